// The console's only script of its own: a print button (no inline handlers, so a strict
// Content-Security-Policy can forbid inline script).
document.addEventListener("click", function (event) {
  var target = event.target;
  if (target && target.closest && target.closest("[data-print]")) {
    event.preventDefault();
    window.print();
  }
});
