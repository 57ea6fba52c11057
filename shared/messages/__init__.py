"""Messages: the envelope, the typed events, and their versioned wire schemas."""
from shared.messages.envelope import Envelope, MessageError
from shared.messages.schemas import MESSAGE_TYPES, make_message, read_message

__all__ = ["Envelope", "MessageError", "MESSAGE_TYPES", "make_message", "read_message"]
