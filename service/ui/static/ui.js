// The review keyboard: a key press activates the element whose data-key names it (a button submits
// its form, a link is followed, a text box takes the focus); =, <, >, ~ and t set the relationship.
// Pages work without this file: every key has a visible button or link.
// Keys never act while a text box has the focus, can be switched off (remembered in localStorage),
// and never approve a candidate that is not on screen: the first press scrolls it into view.
(function () {
  "use strict";
  var STORE_KEY = "crosswalk.shortcuts";
  var RELATIONSHIPS = ["equivalent", "source-is-narrower-than-target", "source-is-broader-than-target", "related-to"];
  var RELATIONSHIP_KEYS = { "=": 0, "<": 1, ">": 2, "~": 3 };
  var busy = false; // one decision per page: a second key press never submits twice

  function typing(element) {
    return element && (element.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(element.tagName));
  }

  function announce(text) {
    var live = document.getElementById("live");
    if (live) { live.textContent = text; }
  }

  function setRelationship(index) {
    var select = document.getElementById("relationship");
    if (!select) { return false; }
    select.value = RELATIONSHIPS[index];
    select.classList.add("changed");
    announce("Relationship: " + select.options[select.selectedIndex].text);
    return true;
  }

  function cycleRelationship() {
    var select = document.getElementById("relationship");
    if (!select) { return false; }
    return setRelationship((RELATIONSHIPS.indexOf(select.value) + 1) % RELATIONSHIPS.length);
  }

  function shortcutsOn() {
    try { return window.localStorage.getItem(STORE_KEY) !== "off"; } catch (e) { return true; }
  }

  function showShortcutState(on) {
    document.body.classList.toggle("keys-off", !on);
    var state = document.getElementById("keys-state");
    if (state) {
      state.textContent = on ? "on: letters and digits act at once (off: use the buttons)"
        : "off: keys do nothing; use the buttons, Tab and Enter";
    }
  }

  function setupToggle() {
    var toggle = document.getElementById("keys-on");
    if (!toggle) { return; }
    toggle.checked = shortcutsOn();
    showShortcutState(toggle.checked);
    toggle.closest(".keys-toggle").hidden = false;
    toggle.addEventListener("change", function () {
      try { window.localStorage.setItem(STORE_KEY, toggle.checked ? "on" : "off"); } catch (e) { /* private mode: this page only */ }
      showShortcutState(toggle.checked);
      announce("Single-key shortcuts " + (toggle.checked ? "on" : "off"));
    });
  }

  // The candidate a key would approve: `a` the first, a digit its own.
  function candidateOf(element, key) {
    if (key === "a") { return document.querySelector("ol.candidates .candidate"); }
    return element.closest ? element.closest(".candidate") : null;
  }

  function onScreen(element) {
    var box = element.getBoundingClientRect();
    return box.height > 0 && box.top >= 0 && box.bottom <= (window.innerHeight || document.documentElement.clientHeight);
  }

  // Approving what cannot be seen is refused: the candidate is scrolled into view and the key asked for again.
  function refuseUnseen(candidate, key) {
    var title = candidate.querySelector(".cand-title") || candidate;
    if (onScreen(title)) { return false; }
    title.scrollIntoView({ block: "center" });
    var number = Array.prototype.indexOf.call(candidate.parentNode.children, candidate) + 1;
    var text = "Candidate " + number + " was not on screen, so " + key + " did nothing. It is in view now: read it, then press " + key + " again.";
    var message = document.getElementById("key-message");
    if (message) { message.textContent = text; message.hidden = false; }
    announce(text);
    return true;
  }

  function activate(element) {
    if (element.tagName === "BUTTON") {
      busy = true;
      element.form.requestSubmit(element);
    } else if (element.tagName === "A") {
      busy = true;
      window.location.assign(element.href);
    } else {
      element.focus();
      if (element.select) { element.select(); }
    }
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    if (!shortcutsOn()) { return; }
    if (busy) { event.preventDefault(); return; }
    var handled = false;
    if (Object.prototype.hasOwnProperty.call(RELATIONSHIP_KEYS, event.key)) {
      handled = setRelationship(RELATIONSHIP_KEYS[event.key]);
    } else if (event.key === "t") {
      handled = cycleRelationship();
    } else {
      var element = document.querySelector('[data-key="' + CSS.escape(event.key) + '"]');
      if (element && !element.disabled) {
        var candidate = element.tagName === "BUTTON" ? candidateOf(element, event.key) : null;
        if (!(candidate && refuseUnseen(candidate, event.key))) { activate(element); }
        handled = true;
      }
    }
    if (handled) { event.preventDefault(); }
  }

  document.addEventListener("keydown", onKey);
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setupToggle); } else { setupToggle(); }
  // Back/forward restores a page from the cache with `busy` set: let it take keys again.
  window.addEventListener("pageshow", function () { busy = false; });
})();
