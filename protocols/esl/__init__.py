"""Electronic Shelf Label protocols (Bluetooth ESL Profile and Service 1.0, and a serial tag link), sans-IO.

Bytes in, typed messages out, for everything that crosses the air or the wire between the gateway and its e-ink
tags. Importing this package gives the one import the BLE access point, the emulated tags and the simulator need for
the air (the Bluetooth SIG ESL Profile and Service 1.0); the serial link's names come from :mod:`protocols.esl.serial`.
Nothing here opens a connection or reads a clock; keys and randomizers come from the caller, so every function is
deterministic and testable with vectors.

- The ESL Control Point (ECP), the bytes both links carry, re-exported here: :mod:`protocols.esl.address` (ESL
  addresses), :mod:`protocols.esl.commands` and :mod:`protocols.esl.responses` (every ECP command and response TLV),
  :mod:`protocols.esl.tlv` (the length rule they share; :class:`UnknownOpcodeError`). :mod:`protocols.esl.fields`
  holds the field checks every codec here uses.
- :mod:`protocols.esl.ead`: Encrypted Advertising Data (AES-CCM) and the 24-byte Key Material; public entry points
  :func:`ead_encrypt` and :func:`ead_decrypt`.
- :mod:`protocols.esl.info`: the ESL Service characteristic values (display, image, sensor and LED information,
  address, key material, absolute time).
- :mod:`protocols.esl.sync`: PAwR sync packets (commands for one group, at most 48 bytes, EAD-wrapped) and the
  response-slot parser.
- :mod:`protocols.esl.serial`: the framed serial link that carries the same ECP TLVs to wired tags (COBS, CRC-16,
  acknowledged delivery, block image transfer); it has its own names and is imported from there, not re-exported.

Errors: everything raises :class:`~protocols.errors.ProtocolError` or a subclass (:class:`EadError`,
:class:`UnknownOpcodeError`, :class:`PayloadTooLargeError`), and nothing else, for any input bytes.
"""

from __future__ import annotations

from protocols.errors import ProtocolError
from protocols.esl.address import BROADCAST_ESL_ID, MAX_GROUP_ID, EslAddress
from protocols.esl.commands import (
    MAX_COMMAND_LEN,
    Command,
    DisplayImage,
    DisplayTimedImage,
    FactoryReset,
    LedControl,
    LedTimedControl,
    Ping,
    ReadSensorData,
    RefreshDisplay,
    ServiceReset,
    Unassociate,
    UpdateComplete,
    VendorCommand,
    decode_command,
    decode_commands,
)
from protocols.esl.ead import (
    EAD_AAD,
    EAD_AD_TYPE,
    EAD_OVERHEAD,
    IV_SIZE,
    MAX_EAD_PLAINTEXT,
    MIC_SIZE,
    RANDOMIZER_SIZE,
    SESSION_KEY_SIZE,
    EadError,
    KeyMaterial,
    ead_decrypt,
    ead_encrypt,
)
from protocols.esl.info import (
    ESL_SERVICE_UUID,
    MAX_ATT_VALUE,
    MAX_INFO_ENTRIES,
    CharacteristicValue,
    CurrentAbsoluteTime,
    DisplayInfo,
    DisplayInformation,
    DisplayType,
    EslCharacteristic,
    ImageInformation,
    LedInfo,
    LedInformation,
    LedType,
    MeshSensor,
    SensorInfo,
    SensorInformation,
    VendorSensor,
    decode_characteristic,
    decode_esl_address,
)
from protocols.esl.responses import (
    BasicState,
    BasicStateFlags,
    DisplayState,
    ErrorCode,
    ErrorResponse,
    LedState,
    Response,
    SensorValue,
    VendorResponse,
    decode_response,
    decode_responses,
)
from protocols.esl.sync import (
    ESL_AD_TYPE,
    MAX_ESL_PAYLOAD,
    PayloadTooLargeError,
    SlotOutcome,
    SlotResult,
    SyncPacket,
    build_sync_packets,
    decode_slot_response,
    encode_response_payload,
    encode_slot_response,
    parse_response_slots,
)
from protocols.esl.tlv import UnknownOpcodeError, tlv_length

__all__ = [
    "BROADCAST_ESL_ID",
    "EAD_AAD",
    "EAD_AD_TYPE",
    "EAD_OVERHEAD",
    "ESL_AD_TYPE",
    "ESL_SERVICE_UUID",
    "IV_SIZE",
    "MAX_ATT_VALUE",
    "MAX_COMMAND_LEN",
    "MAX_EAD_PLAINTEXT",
    "MAX_ESL_PAYLOAD",
    "MAX_GROUP_ID",
    "MAX_INFO_ENTRIES",
    "MIC_SIZE",
    "RANDOMIZER_SIZE",
    "SESSION_KEY_SIZE",
    "BasicState",
    "BasicStateFlags",
    "CharacteristicValue",
    "Command",
    "CurrentAbsoluteTime",
    "DisplayImage",
    "DisplayInfo",
    "DisplayInformation",
    "DisplayState",
    "DisplayTimedImage",
    "DisplayType",
    "EadError",
    "ErrorCode",
    "ErrorResponse",
    "EslAddress",
    "EslCharacteristic",
    "FactoryReset",
    "ImageInformation",
    "KeyMaterial",
    "LedControl",
    "LedInfo",
    "LedInformation",
    "LedState",
    "LedTimedControl",
    "LedType",
    "MeshSensor",
    "PayloadTooLargeError",
    "Ping",
    "ProtocolError",
    "ReadSensorData",
    "RefreshDisplay",
    "Response",
    "SensorInfo",
    "SensorInformation",
    "SensorValue",
    "ServiceReset",
    "SlotOutcome",
    "SlotResult",
    "SyncPacket",
    "Unassociate",
    "UnknownOpcodeError",
    "UpdateComplete",
    "VendorCommand",
    "VendorResponse",
    "VendorSensor",
    "build_sync_packets",
    "decode_characteristic",
    "decode_command",
    "decode_commands",
    "decode_esl_address",
    "decode_response",
    "decode_responses",
    "decode_slot_response",
    "ead_decrypt",
    "ead_encrypt",
    "encode_response_payload",
    "encode_slot_response",
    "parse_response_slots",
    "tlv_length",
]
