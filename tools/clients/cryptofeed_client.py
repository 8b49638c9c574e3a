"""cryptofeed's Upbit feed (trades + L2 book) against `stock-observer sim`.

Needs SIM_UPBIT_REST (ending in /v1) and SIM_UPBIT_WS. The feed's endpoint constants are
patched, and one client-side check: cryptofeed refuses any WebSocket address that is not
wss://, and the sim serves plain ws:// on loopback (no certificate to trust).
"""

import asyncio
import os
import sys
import threading

from cryptofeed import FeedHandler
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint, WSAsyncConn
from cryptofeed.defines import L2_BOOK, TRADES
from cryptofeed.exchanges import Upbit

REST = os.environ["SIM_UPBIT_REST"].rstrip("/")
WS = os.environ["SIM_UPBIT_WS"]
WANT = int(os.environ.get("CRYPTOFEED_MESSAGES", "5"))

Upbit.websocket_endpoints = [WebsocketEndpoint(WS)]
_ws_init = WSAsyncConn.__init__


def _plain_ws_init(self, address, *args, **kwargs):
    _ws_init(self, address.replace("ws://", "wss://", 1), *args, **kwargs)
    self.address = address


WSAsyncConn.__init__ = _plain_ws_init
Upbit.rest_endpoints = [RestEndpoint(REST[: -len("/v1")], routes=Routes("/v1/market/all"))]

seen = {TRADES: [], L2_BOOK: []}
done = threading.Event()


async def on_trade(t, receipt_timestamp):
    seen[TRADES].append(t)
    check_done()


async def on_book(b, receipt_timestamp):
    seen[L2_BOOK].append(b)
    check_done()


def check_done():
    if all(len(v) >= WANT for v in seen.values()):
        done.set()
        loop = asyncio.get_event_loop()
        loop.call_soon(loop.stop)


def main():
    fh = FeedHandler(config={"log": {"filename": "/dev/null", "level": "WARNING"}})
    fh.add_feed(
        Upbit(
            symbols=["BTC-KRW", "ETH-KRW", "XRP-KRW"],
            channels=[TRADES, L2_BOOK],
            callbacks={TRADES: on_trade, L2_BOOK: on_book},
        )
    )
    timer = threading.Timer(float(os.environ.get("CRYPTOFEED_TIMEOUT", "60")), done.set)
    timer.start()
    try:
        fh.run(start_loop=True, install_signal_handlers=False)
    except RuntimeError:
        pass  # the loop was stopped from a callback
    timer.cancel()
    ok = all(len(v) >= WANT for v in seen.values())
    t = seen[TRADES][0] if seen[TRADES] else None
    b = seen[L2_BOOK][-1] if seen[L2_BOOK] else None
    print(f"{'ok  ' if len(seen[TRADES]) >= WANT else 'FAIL'} cryptofeed trades: {len(seen[TRADES])} received; first {t}")
    if b is not None:
        bid = b.book.bids.index(0)
        ask = b.book.asks.index(0)
        detail = f"{len(b.book.bids)} bid / {len(b.book.asks)} ask levels, best {bid} / {ask}"
    else:
        detail = "none"
    print(f"{'ok  ' if len(seen[L2_BOOK]) >= WANT else 'FAIL'} cryptofeed L2 book: {len(seen[L2_BOOK])} received; {detail}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
