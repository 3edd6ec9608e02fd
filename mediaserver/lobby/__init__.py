"""Admission: roles, guest policy, waiting room and moderation (enforced on the server)."""

from .policy import Admission, decide_admission, effective_guest_policy

__all__ = ["Admission", "decide_admission", "effective_guest_policy"]
