// The review keyboard: a key press activates the element whose data-key names it (a button submits
// its form, a link is followed, a text box takes the focus); =, <, >, ~ and t set the relationship.
// Pages work without this file: every key has a visible button or link.
(function () {
  "use strict";
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
    if (busy) { event.preventDefault(); return; }
    var handled = false;
    if (Object.prototype.hasOwnProperty.call(RELATIONSHIP_KEYS, event.key)) {
      handled = setRelationship(RELATIONSHIP_KEYS[event.key]);
    } else if (event.key === "t") {
      handled = cycleRelationship();
    } else {
      var element = document.querySelector('[data-key="' + CSS.escape(event.key) + '"]');
      if (element && !element.disabled) { activate(element); handled = true; }
    }
    if (handled) { event.preventDefault(); }
  }

  document.addEventListener("keydown", onKey);
  // Back/forward restores a page from the cache with `busy` set: let it take keys again.
  window.addEventListener("pageshow", function () { busy = false; });
})();
