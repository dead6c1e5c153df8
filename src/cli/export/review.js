"use strict";
// Expand or collapse every <details> (tool calls, folded context, files) at once.
for (const [id, open] of [["expand-all", true], ["collapse-all", false]]) {
  const button = document.getElementById(id);
  if (button) {
    button.addEventListener("click", () => {
      for (const details of document.querySelectorAll("details")) {
        details.open = open;
      }
    });
  }
}
// Following a link into a folded part of the page opens it.
function reveal() {
  const target = location.hash && document.getElementById(location.hash.slice(1));
  for (let node = target; node; node = node.parentElement) {
    if (node.tagName === "DETAILS") {
      node.open = true;
    }
  }
}
window.addEventListener("hashchange", reveal);
reveal();
document.documentElement.dataset.ready = "1";
