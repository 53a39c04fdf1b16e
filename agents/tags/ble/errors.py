"""Errors of the Bluetooth ESL access point, one tree mapped to what the caller does next.

::

    BleTransportError                       base: the tag service catches this (beside SerialTransportError)
    ├── UnknownTagError                     no onboarding record maps this ESL address to a BLE device
    └── BleTagError                         one tag failed; ``ble_address`` and ``reason`` say which and why
        ├── TagNotFoundError                not advertising / not seen by the adapter (out of range, flat battery)
        ├── TagConnectionError (ConnectionError)
        │   ├── ConnectionFailedError       could not connect, discover services or pair
        │   │   └── ConnectTimeoutError (TimeoutError)
        │   └── ConnectionLostError         the link dropped in the middle of an operation
        ├── ResponseTimeoutError (TimeoutError)    connected, but the tag did not answer in time
        ├── EcpError                        the tag answered an ECP command with an Error response (``code``)
        ├── OtsError                        an OACP/OLCP request failed (``opcode``, ``result``)
        ├── GattError                       an ATT error response to a read or write (``att_code`` when known)
        ├── MalformedResponseError          a notification, indication or value that does not decode
        ├── IncompatibleTagError            the tag lacks what the AP needs (ESL/OTS service, OACP Write...)
        └── TransferError                   an image did not arrive intact (checksum mismatch after retries)

Retry policy (in :class:`~agents.tags.ble.access_point.EslAccessPoint`): :data:`RETRYABLE` errors (the connection
family, timeouts and tag-not-found) are retried with jittered, capped back-off; the rest are the tag's considered
answer and retrying would only repeat it. Every error chains (``from``) the bleak or OS error that caused it.
"""

from __future__ import annotations

from agents.tags.transport import TagRefusedError, TagTransportError
from protocols.esl import ErrorCode

__all__ = [
    "RETRYABLE",
    "BleTagError",
    "BleTransportError",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "ConnectionLostError",
    "EcpError",
    "GattError",
    "IncompatibleTagError",
    "MalformedResponseError",
    "OtsError",
    "ResponseTimeoutError",
    "TagConnectionError",
    "TagNotFoundError",
    "TransferError",
    "UnknownTagError",
]


class BleTransportError(TagTransportError):
    """Base class of every error the BLE access point and transport raise."""


class UnknownTagError(BleTransportError, LookupError):
    """No onboarding record for this ESL address (example: the tag was never onboarded on this gateway)."""


class BleTagError(BleTransportError):
    """One tag failed. ``ble_address`` names it, ``reason`` is a short per-tag explanation for reports."""

    def __init__(self, ble_address: str, reason: str) -> None:
        super().__init__(f"tag {ble_address}: {reason}")
        self.ble_address = ble_address
        self.reason = reason


class TagNotFoundError(BleTagError):
    """The adapter cannot see the tag (example: out of range, battery flat, already associated elsewhere)."""


class TagConnectionError(BleTagError, ConnectionError):
    """The BLE link could not be used."""


class ConnectionFailedError(TagConnectionError):
    """Connecting, service discovery or pairing failed (example: the tag refused the connection)."""


class ConnectTimeoutError(ConnectionFailedError, TimeoutError):
    """Connecting took longer than the configured connect timeout."""


class ConnectionLostError(TagConnectionError):
    """The link dropped mid-operation (example: the tag walked out of range during an image upload)."""


class ResponseTimeoutError(BleTagError, TimeoutError):
    """The tag is connected but did not answer a command or control-point request in time."""


class EcpError(BleTagError, TagRefusedError):
    """The tag answered an ECP command with an Error response (example: Display Image of an empty slot)."""

    def __init__(self, ble_address: str, reason: str, code: int) -> None:
        super().__init__(ble_address, reason)
        self.code = code

    @property
    def error(self) -> ErrorCode | None:
        """The :class:`~protocols.esl.ErrorCode`, or None for a vendor-specific or reserved code."""
        try:
            return ErrorCode(self.code)
        except ValueError:
            return None


class OtsError(BleTagError):
    """An OACP or OLCP request failed (example: OACP Write with Insufficient Resources)."""

    def __init__(self, ble_address: str, reason: str, opcode: int, result: int) -> None:
        super().__init__(ble_address, reason)
        self.opcode = opcode
        self.result = result


class GattError(BleTagError):
    """The tag answered a GATT read or write with an ATT error (example: a write without encryption)."""

    def __init__(self, ble_address: str, reason: str, att_code: int | None = None) -> None:
        super().__init__(ble_address, reason)
        self.att_code = att_code


class MalformedResponseError(BleTagError):
    """A notification, indication or characteristic value that does not decode (example: a truncated TLV)."""


class IncompatibleTagError(BleTagError):
    """The tag lacks a service or feature the AP needs (example: no OTS, or OTS without OACP Write)."""


class TransferError(BleTagError):
    """An image did not arrive intact (example: the checksum kept mismatching after restarts)."""


RETRYABLE: tuple[type[BleTagError], ...] = (TagNotFoundError, TagConnectionError, ResponseTimeoutError)
"""Errors worth another connection attempt after a back-off."""
