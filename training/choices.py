"""What ``auditloop answer`` retrieves and generates per question unless told otherwise. Plain constants
that import nothing, so ``auditloop answer --help`` shows them without loading the model stack;
:mod:`training.assistant` imports them from here."""

from __future__ import annotations

ANSWER_TOP_K = 3
ANSWER_MAX_NEW_TOKENS = 64
# prompts through the model at once: on CPU (tiny model, one thread, 64 demo prompts) 32 gave 14.1–15.7
# prompts/s against 12.9–14.2 for 16 and 10.8–11.7 for 8 (a decoding step's fixed cost over more rows)
ANSWER_BATCH_SIZE = 32
# Added to the logit of the token that continues the retrieved context while the answer follows it
# (training.generation.transformers_backend.ContextCopy); 0 = the model's own choice alone. Measured on
# the seed-7 demo base model's answers to its 150 gold questions (first-stage top 3): fact accuracy
# 0.10 with 0, 0.23 with 4, 0.24 with 6, 0.27 with 10 (which began copying a context header into a
# citation); wrong values 0.33 -> 0.21; citation accuracy unchanged (0.86-0.88).
COPY_BIAS = 6.0
