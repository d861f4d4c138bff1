"""mschat: a multi-user, multi-session LLM chat system."""

__version__ = "0.4.0"
