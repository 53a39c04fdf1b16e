"""The ESL Control Point (ECP) from the access point's side: send a command, match the tag's response to it.

An ECP command is written to the ESL Control Point characteristic and answered by a notification on it (ESL
Service 1.0). With one request outstanding per control point (:class:`~agents.tags.ble.link.GattLink`), matching is
by kind: :func:`answers` says whether a notification is the response the command expects (Display State answers
Display Image of the same display, Sensor Value a Read Sensor Data of the same sensor, an Error answers anything).
An Error response is the tag's considered "no" and raises :class:`~agents.tags.ble.errors.EcpError` with its code.

Update Complete and Factory Reset have no success response: :func:`send_without_response` listens for
``no_response_grace_s`` and takes silence as success, an Error as a refusal.
"""

from __future__ import annotations

from agents.tags.ble.errors import EcpError
from agents.tags.ble.link import GattLink
from protocols.esl import (
    ESL_SERVICE_UUID,
    BasicState,
    Command,
    DisplayImage,
    DisplayState,
    DisplayTimedImage,
    ErrorCode,
    ErrorResponse,
    EslCharacteristic,
    FactoryReset,
    LedControl,
    LedState,
    LedTimedControl,
    Ping,
    ReadSensorData,
    RefreshDisplay,
    Response,
    SensorValue,
    ServiceReset,
    Unassociate,
    UpdateComplete,
    VendorCommand,
    VendorResponse,
    decode_response,
)

__all__ = ["NO_RESPONSE_COMMANDS", "answers", "error_name", "send_command", "send_without_response"]

NO_RESPONSE_COMMANDS = (UpdateComplete, FactoryReset)
"""Commands a tag answers only when it refuses them."""
_POINT = "ecp"


def answers(command: Command, response: Response) -> bool:
    """True when ``response`` is the kind of answer ``command`` expects (Error answers anything)."""
    match command, response:
        case _, ErrorResponse() | VendorResponse():
            return isinstance(response, ErrorResponse) or isinstance(command, VendorCommand)
        case Ping() | ServiceReset() | Unassociate(), BasicState():
            return True
        case ReadSensorData(), SensorValue():
            return response.sensor_index == command.sensor_index
        case RefreshDisplay() | DisplayImage() | DisplayTimedImage(), DisplayState():
            return response.display_index == command.display_index
        case LedControl() | LedTimedControl(), LedState():
            return response.led_index == command.led_index
    return False


def error_name(code: int) -> str:
    """The name of an ECP error code, or its hex value for a vendor-specific or reserved one."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:02x}"


async def _subscribe(link: GattLink) -> None:
    await link.subscribe(_POINT, ESL_SERVICE_UUID, EslCharacteristic.ESL_CONTROL_POINT)


def _decode(link: GattLink, what: str, value: bytes) -> Response:
    return link.decode(what, lambda raw: decode_response(raw)[0], value)


def _refused(link: GattLink, what: str, response: ErrorResponse) -> EcpError:
    return EcpError(link.ble_address, f"{what} refused: {error_name(response.code)}", response.code)


async def send_command(link: GattLink, command: Command) -> Response:
    """Send one ECP command and return its response; an Error response raises :class:`EcpError`."""
    if isinstance(command, NO_RESPONSE_COMMANDS):
        raise ValueError(f"{type(command).__name__} has no response: use ecp_without_response")
    await _subscribe(link)

    def accepts(value: bytes) -> bool:
        response, _rest = decode_response(value)
        return answers(command, response)

    what = type(command).__name__
    value = await link.request(
        _POINT, ESL_SERVICE_UUID, EslCharacteristic.ESL_CONTROL_POINT, command.encode(), accepts, what=what
    )
    response = _decode(link, what, value)
    if isinstance(response, ErrorResponse):
        raise _refused(link, what, response)
    return response


async def send_without_response(link: GattLink, command: Command) -> None:
    """Send a command that has no success response (Update Complete, Factory Reset); an Error still raises."""
    await _subscribe(link)
    value = await link.request_or_silence(
        _POINT,
        ESL_SERVICE_UUID,
        EslCharacteristic.ESL_CONTROL_POINT,
        command.encode(),
        lambda value: isinstance(decode_response(value)[0], ErrorResponse),
        wait_s=link.settings.no_response_grace_s,
    )
    if value is None:
        return  # silence is success for these commands
    what = type(command).__name__
    response = _decode(link, what, value)
    assert isinstance(response, ErrorResponse)
    raise _refused(link, what, response)
