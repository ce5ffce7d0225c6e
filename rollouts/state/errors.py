"""What can go wrong in the commit protocol: a message that would say something the protocol does
not (a verdict, stage or change outside its vocabulary). Reading never fails: a message we cannot
understand is simply not one of ours."""

from __future__ import annotations


class MessageError(ValueError):
    """A commit message or weight change outside the protocol; the message names the bad word."""
