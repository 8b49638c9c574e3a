"""pyupbit against `stock-observer sim`.

Needs SIM_UPBIT_REST (the sim's printed Upbit REST base, ending in /v1). pyupbit writes
its URLs out in full, so every request to api.upbit.com is redirected there.
"""

import os
import sys

import requests

REST = os.environ["SIM_UPBIT_REST"].rstrip("/")
REAL = "https://api.upbit.com/v1"
_get = requests.get


def redirected_get(url, *args, **kwargs):
    if url.startswith(REAL):
        url = REST + url[len(REAL):]
    return _get(url, *args, **kwargs)


requests.get = redirected_get

import pyupbit  # noqa: E402  (after the patch)

results = []


def check(name, fn):
    try:
        results.append((name, True, fn()))
    except Exception as e:
        results.append((name, False, f"{type(e).__name__}: {e}"))


def tickers():
    t = pyupbit.get_tickers(fiat="KRW")
    assert "KRW-BTC" in t, t
    return f"{len(t)} KRW markets"


def daily():
    df = pyupbit.get_ohlcv("KRW-BTC", interval="day", count=200)
    assert df is not None and len(df) == 200, df
    return f"{len(df)} days {df.index[0]}..{df.index[-1]} last close {df['close'].iloc[-1]}"


def daily_400():
    df = pyupbit.get_ohlcv("KRW-ETH", interval="day", count=400)
    assert df is not None and len(df) >= 300, None if df is None else len(df)
    return f"{len(df)} days (paged with to)"


def minute1():
    df = pyupbit.get_ohlcv("KRW-BTC", interval="minute1", count=200)
    assert df is not None and len(df) == 200, df
    return f"{len(df)} minutes {df.index[0]}..{df.index[-1]}"


def minute1_day():
    df = pyupbit.get_ohlcv("KRW-BTC", interval="minute1", count=1440)
    assert df is not None and len(df) == 1440, None if df is None else len(df)
    return f"{len(df)} minutes = the previous 24 h {df.index[0]}..{df.index[-1]}"


def minute60():
    df = pyupbit.get_ohlcv("KRW-XRP", interval="minute60", count=48)
    assert df is not None and len(df) == 48, df
    return f"{len(df)} hour candles"


def price():
    p = pyupbit.get_current_price("KRW-BTC")
    many = pyupbit.get_current_price(["KRW-BTC", "KRW-ETH"])
    assert p > 0 and len(many) == 2
    return f"KRW-BTC {p}; {many}"


def orderbook():
    ob = pyupbit.get_orderbook("KRW-BTC")
    units = ob["orderbook_units"]
    return f"{len(units)} levels, best bid {units[0]['bid_price']} ask {units[0]['ask_price']}"


check("get_tickers", tickers)
check("get_ohlcv day 200", daily)
check("get_ohlcv day 400", daily_400)
check("get_ohlcv minute1 200", minute1)
check("get_ohlcv minute1 1440", minute1_day)
check("get_ohlcv minute60 48", minute60)
check("get_current_price", price)
check("get_orderbook", orderbook)

failed = 0
for name, ok, detail in results:
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} pyupbit {name}: {detail}")
sys.exit(1 if failed else 0)
