"""python-kis (REST) against `stock-observer sim`.

Needs SIM_KIS_REST (the sim's printed KIS REST base) and KIS_APP_KEY / KIS_APP_SECRET:
the pair the sim was started with, or the made-up pair it printed. Only the domain
constants are patched; python-kis does everything else as it would against KIS.
"""

import os
import sys
from datetime import timedelta

import pykis.kis
import pykis.client.websocket

REST = os.environ["SIM_KIS_REST"]
# python-kis sends quotations to the real domain, and calls without a domain to the
# virtual one when it has virtual keys; both point at the sim. The sim is one KIS server
# (the real one): a second tokenP for the same app key within a minute gets EGW00133 there
# as at KIS, so the client is given real-domain keys only.
pykis.kis.REAL_DOMAIN = REST
pykis.kis.VIRTUAL_DOMAIN = REST
if "SIM_KIS_WS" in os.environ:
    pykis.client.websocket.WEBSOCKET_REAL_DOMAIN = os.environ["SIM_KIS_WS"]
    pykis.client.websocket.WEBSOCKET_VIRTUAL_DOMAIN = os.environ["SIM_KIS_WS"]

from pykis import PyKis  # noqa: E402  (after the patch)

key, secret = os.environ["KIS_APP_KEY"], os.environ["KIS_APP_SECRET"]
kis = PyKis(
    id="simuser",
    account="50000000-01",
    appkey=key,
    secretkey=secret,
    use_websocket=False,
    keep_token=False,
)

results = []


def check(name, fn):
    try:
        detail = fn()
        results.append((name, True, detail))
    except Exception as e:  # report every call, do not stop at the first failure
        results.append((name, False, f"{type(e).__name__}: {e}"))


samsung = None


def login_and_stock():
    global samsung
    samsung = kis.stock("005930")
    return f"token ok; {samsung.symbol} {samsung.name} ({samsung.market})"


def quote():
    q = samsung.quote()
    return f"price {q.price} change {q.change} volume {q.volume} tick {q.tick} 52w {q.indicator.week52_low}..{q.indicator.week52_high}"


def daily():
    c = samsung.daily_chart(start=timedelta(days=200))
    bars = c.bars
    assert len(bars) >= 100, len(bars)
    return f"{len(bars)} daily bars {bars[0].time.date()}..{bars[-1].time.date()} last close {bars[-1].close}"


def daily_all():
    c = samsung.daily_chart()
    return f"{len(c.bars)} daily bars in the whole history"


def minutes():
    c = samsung.day_chart()
    bars = c.bars
    assert bars, "no minute bars"
    return f"{len(bars)} minute bars {bars[0].time.time()}..{bars[-1].time.time()}"


def orderbook():
    b = samsung.orderbook()
    return f"best bid {b.bid_price.price} x {b.bid_price.volume}, best ask {b.ask_price.price} x {b.ask_price.volume}"


def other_large_caps():
    names = []
    for code in ("000660", "373220", "247540"):
        s = kis.stock(code)
        names.append(f"{code} {s.name} {s.quote().price}")
    return "; ".join(names)


check("login + stock(005930)", login_and_stock)
if samsung is not None:
    check("quote", quote)
    check("daily_chart 200 days", daily)
    check("daily_chart all", daily_all)
    check("day_chart (minutes)", minutes)
    check("orderbook", orderbook)
check("other large caps", other_large_caps)

# A wrong secret gets KIS's error.
try:
    bad = PyKis(id="simuser", account="50000000-01", appkey=key, secretkey="x" * 180, use_websocket=False)
    bad.stock("005930").quote()
    results.append(("wrong secret refused", False, "accepted"))
except Exception as e:
    results.append(("wrong secret refused", "EGW00103" in str(e) or "유효하지" in str(e), f"{type(e).__name__}"))

failed = 0
for name, ok, detail in results:
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} python-kis {name}: {detail}")
sys.exit(1 if failed else 0)
