"""Keyboard-first rating: keys 1–5 score the highlighted dimension and move to the next one.

Each rating scale is an ``st.segmented_control`` keyed ``rate_<dimension>_item`` (the same key for
every item, so that the browser updates the widgets instead of building new ones); Streamlit gives its
container the class ``st-key-rate_<dimension>_item``. An element of the page carries the item's id in
an attribute (``item_attribute``): that is how the script sees a new item. The script below (ours,
static: no data from the model or the database goes into it) listens for keys on the page:

- ``1``–``5`` press that segment of the highlighted scale, then highlight the next scale;
- ``y`` / ``n`` / ``u`` answer "sources correct?" (yes / no / unsure);
- clicking or tabbing into a scale highlights it;
- keys typed into a text field are left alone (comments stay writable);
- ``Ctrl+Enter`` submits: the submit button's own Streamlit shortcut, and this script when the
  cursor is in a text field (where Streamlit's shortcuts do not fire, and the field's own submit of
  the form is stopped: one submit, never two) or when scores typed before the scales were drawn are
  still waiting (the submit then waits for them).

It is injected with ``st.html(..., unsafe_allow_javascript=True)`` — the one place the app runs
script of its own — and installs its listener once per browser tab, however often the page reruns.
"""

from __future__ import annotations

import json

import streamlit as st

_SCRIPT = """
<script>
(() => {
  const config = %(config)s;
  window.__auditloopRating = config;
  if (window.__auditloopRatingInstalled) { return; }
  window.__auditloopRatingInstalled = true;
  const state = { active: 0, item: null };
  // keys typed before the scales can take them (a new tab loads each widget's code on first use):
  // applied, in order, as soon as they can, unless the item changed meanwhile
  const pending = [];
  const PENDING_MS = 5000;
  // Ctrl+Enter pressed while keys wait: the submit waits for them too (else the form would go out
  // without the scores just typed)
  let pendingSubmit = null;

  const scaleBox = (dimension) =>
    document.querySelector(`[class*="st-key-${window.__auditloopRating.prefix}${dimension}_"]`);
  // the segment whose text is the option (the label's help icon is a button too: never by position)
  const segmentOf = (box, option) =>
    box ? [...box.querySelectorAll("button")].find((button) => button.innerText.trim() === option) : undefined;
  // every scale drawn with its segments (until then a scale's box can be there without its buttons)
  const ready = () => {
    const config = window.__auditloopRating;
    return [...config.dimensions, config.sourcesKey].every((name) => {
      const box = scaleBox(name);
      return box !== null && box.querySelector('button[role="radio"]') !== null;
    });
  };
  const currentItem = () => {
    const attribute = window.__auditloopRating.itemAttribute;
    const marker = document.querySelector(`[${attribute}]`);
    return marker && ready() ? marker.getAttribute(attribute) : null;
  };
  // the highlight is the auditor's cue that keys work: drawn only once they do
  const highlight = () => {
    const live = state.item !== null;
    window.__auditloopRating.dimensions.forEach((dimension, index) => {
      const box = scaleBox(dimension);
      if (box) {
        box.style.outline = live && index === state.active ? "2px solid #ff4b4b" : "";
        box.style.outlineOffset = "4px";
        box.style.borderRadius = "6px";
      }
    });
  };
  // one key: true when it was applied (or means nothing here), false when the scales are not ready
  const apply = (key) => {
    const config = window.__auditloopRating;
    if (state.item === null) { return false; }
    if (key >= "1" && key <= "5") {
      const segment = segmentOf(scaleBox(config.dimensions[state.active]), key);
      if (!segment) { return false; }
      segment.click();
      state.active = Math.min(state.active + 1, config.dimensions.length - 1);
      highlight();
    } else if (key in config.sourcesKeys) {
      const segment = segmentOf(scaleBox(config.sourcesKey), config.sourcesKeys[key]);
      if (!segment) { return false; }
      segment.click();
    }
    return true;
  };
  const submitButton = () =>
    document.querySelector(`[class*="st-key-${window.__auditloopRating.submitPrefix}"] button`);
  const flush = () => {
    while (pending.length) {
      const next = pending[0];
      if (performance.now() - next.at > PENDING_MS || (next.item !== null && next.item !== state.item)) {
        pending.shift();
      } else if (apply(next.key)) {
        pending.shift();
      } else {
        return;
      }
    }
    const submit = pendingSubmit;
    pendingSubmit = null;
    if (submit && performance.now() - submit.at <= PENDING_MS && (submit.item === null || submit.item === state.item)) {
      // after the segments' own updates of the form have run
      setTimeout(() => { const button = submitButton(); if (button) { button.click(); } }, 50);
    }
  };
  const sync = () => {
    const item = currentItem();
    if (item !== state.item) {
      if (state.item !== null) { pending.length = 0; pendingSubmit = null; }  // typed for the last item: not for this one
      state.item = item;
      state.active = 0;
    }
    highlight();
    flush();
  };
  // a field that takes text (a switch or a radio button that has the focus does not: keys still score)
  const typing = (target) =>
    target instanceof HTMLElement &&
    (target.isContentEditable || ["TEXTAREA", "SELECT"].includes(target.tagName) ||
      (target.tagName === "INPUT" && !["checkbox", "radio", "button"].includes(target.type)));

  document.addEventListener("keydown", (event) => {
    const config = window.__auditloopRating;
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && typing(event.target)) {
      // Streamlit's own Ctrl+Enter shortcut ignores keys typed into a text field; submit from
      // there too, after a blur so that the field commits what was typed. A text area or text input
      // in a form submits that form on Ctrl+Enter by itself: the key stops here (before the field's
      // handler sees it), so that the form goes out once — twice, the second submit rated the next
      // item, unseen, with these scores.
      const submit = submitButton();
      if (submit) {
        event.preventDefault();
        event.stopImmediatePropagation();
        event.target.blur();
        setTimeout(() => submit.click(), 50);
      }
      return;
    }
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && pending.length) {
      // scores typed before the scales were drawn are still waiting: hold Streamlit's own shortcut
      // (it listens after this capturing listener) and submit once they are in
      event.preventDefault();
      event.stopImmediatePropagation();
      pendingSubmit = { item: state.item, at: performance.now() };
      sync();  // the keys at once if the scales are ready, then the submit; keys too old are dropped first
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    if (!((event.key >= "1" && event.key <= "5" && event.key.length === 1) || event.key in config.sourcesKeys)) {
      return;
    }
    if (!scaleBox(config.dimensions[0])) { return; }  // no rating form on this page
    event.preventDefault();
    sync();
    if (pending.length || !apply(event.key)) {
      pending.push({ key: event.key, item: state.item, at: performance.now() });
    }
  }, true);
  document.addEventListener("focusin", (event) => {
    const dims = window.__auditloopRating.dimensions;
    dims.forEach((dimension, index) => {
      const box = scaleBox(dimension);
      if (box && box.contains(event.target)) { state.active = index; highlight(); }
    });
  });
  // re-check once per frame at most, however many nodes a rerun replaces
  let scheduled = false;
  new MutationObserver(() => {
    if (scheduled) { return; }
    scheduled = true;
    requestAnimationFrame(() => { scheduled = false; sync(); });
  }).observe(document.body, { childList: true, subtree: true });
  sync();
})();
</script>
"""


def widget_key(prefix: str, name: str) -> str:
    """The key of a rating widget, the same for every item; the script finds widgets by this shape."""
    return f"{prefix}{name}_item"


def rating_shortcuts(
    *,
    prefix: str,
    dimensions: tuple[str, ...],
    sources_key: str,
    sources_options: tuple[str, ...],
    submit_key: str,
    item_attribute: str,
) -> None:
    """Install the key handler for scales keyed ``widget_key(prefix, dimension)``; ``submit_key`` is the
    name part of the submit button's key; the element with ``item_attribute`` names the item shown."""
    config = {
        "prefix": prefix,
        "submitPrefix": f"{prefix}{submit_key}_",
        "dimensions": list(dimensions),
        "sourcesKey": sources_key,
        "sourcesKeys": {option[0]: option for option in sources_options},
        "itemAttribute": item_attribute,
    }
    st.html(_SCRIPT % {"config": json.dumps(config)}, unsafe_allow_javascript=True, width="content")
