"""An in-process MQTT broker (amqtt) for simulator runs, on a free loopback port.

amqtt speaks MQTT 3.1.1 only, so simulator gateways use protocol 3.1.1; the MQTT 5 paths are exercised
against mosquitto in the test suite.
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType

from amqtt.broker import Broker

from agents.core.config import BrokerUrl


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """``async with EmbeddedBroker() as broker: broker.url``"""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Broker | None = None
        for name in ("amqtt", "transitions"):
            # amqtt logs every connection at INFO; the simulator has its own progress display.
            logging.getLogger(name).setLevel(logging.WARNING)

    @property
    def url(self) -> BrokerUrl:
        return BrokerUrl(scheme="mqtt", host=self.host, port=self.port)

    async def start(self) -> None:
        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
