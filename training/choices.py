"""What ``auditloop answer`` retrieves and generates per question unless told otherwise. Plain constants
that import nothing, so ``auditloop answer --help`` shows them without loading the model stack;
:mod:`training.assistant` imports them from here."""

from __future__ import annotations

ANSWER_TOP_K = 3
ANSWER_MAX_NEW_TOKENS = 64
# prompts through the model at once: on CPU (tiny model, one thread, 64 demo prompts) 32 gave 14.1–15.7
# prompts/s against 12.9–14.2 for 16 and 10.8–11.7 for 8 (a decoding step's fixed cost over more rows)
ANSWER_BATCH_SIZE = 32
