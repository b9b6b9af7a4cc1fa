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
  cursor is in a text field (where Streamlit's shortcuts do not fire).

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

  const scaleBox = (dimension) =>
    document.querySelector(`[class*="st-key-${window.__auditloopRating.prefix}${dimension}_"]`);
  const currentItem = () => {
    const attribute = window.__auditloopRating.itemAttribute;
    const marker = document.querySelector(`[${attribute}]`);
    if (!marker || !scaleBox(window.__auditloopRating.dimensions[0])) { return null; }
    return marker.getAttribute(attribute);
  };
  const highlight = () => {
    const dims = window.__auditloopRating.dimensions;
    dims.forEach((dimension, index) => {
      const box = scaleBox(dimension);
      if (box) {
        box.style.outline = index === state.active ? "2px solid #ff4b4b" : "";
        box.style.outlineOffset = "4px";
        box.style.borderRadius = "6px";
      }
    });
  };
  const sync = () => {
    const item = currentItem();
    if (item !== state.item) { state.item = item; state.active = 0; }
    highlight();
  };
  // the segment whose text is the option (the label's help icon is a button too: never by position)
  const pressSegment = (box, option) => {
    const buttons = box ? [...box.querySelectorAll("button")] : [];
    const segment = buttons.find((button) => button.innerText.trim() === option);
    if (segment) { segment.click(); return true; }
    return false;
  };
  const typing = (target) =>
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));

  document.addEventListener("keydown", (event) => {
    const config = window.__auditloopRating;
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && typing(event.target)) {
      // Streamlit's own Ctrl+Enter shortcut ignores keys typed into a text field; submit from
      // there too, after a blur so that the field commits what was typed.
      const submit = document.querySelector(`[class*="st-key-${config.submitPrefix}"] button`);
      if (submit) {
        event.preventDefault();
        event.target.blur();
        setTimeout(() => submit.click(), 50);
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    sync();
    if (state.item === null) { return; }
    if (event.key >= "1" && event.key <= "5") {
      if (pressSegment(scaleBox(config.dimensions[state.active]), event.key)) {
        state.active = Math.min(state.active + 1, config.dimensions.length - 1);
        highlight();
        event.preventDefault();
      }
    } else if (event.key in config.sourcesKeys) {
      if (pressSegment(scaleBox(config.sourcesKey), config.sourcesKeys[event.key])) { event.preventDefault(); }
    }
  }, true);
  document.addEventListener("focusin", (event) => {
    const dims = window.__auditloopRating.dimensions;
    dims.forEach((dimension, index) => {
      const box = scaleBox(dimension);
      if (box && box.contains(event.target)) { state.active = index; highlight(); }
    });
  });
  // re-highlight once per frame at most, however many nodes a rerun replaces
  let pending = false;
  new MutationObserver(() => {
    if (pending) { return; }
    pending = true;
    requestAnimationFrame(() => { pending = false; sync(); });
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
