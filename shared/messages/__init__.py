from shared.messages.envelope import Envelope, MessageError
from shared.messages.schemas import MESSAGE_TYPES, make_message, read_payload

__all__ = ["Envelope", "MessageError", "MESSAGE_TYPES", "make_message", "read_payload"]
