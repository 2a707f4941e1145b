// The commit page's status filter. Without scripts every row shows and the buttons stay hidden.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const toolbar = document.getElementById("status-filter");
  if (!toolbar) return;
  const buttons = toolbar.querySelectorAll("button[data-filter]");
  const rows = document.querySelectorAll("table.tests tbody tr[data-status]");
  const shown = document.getElementById("shown-count");
  const apply = (wanted) => {
    let count = 0;
    for (const row of rows) {
      row.hidden = wanted !== "all" && row.dataset.status !== wanted;
      if (!row.hidden && !row.classList.contains("detail")) count += 1;
    }
    for (const button of buttons) {
      button.setAttribute("aria-pressed", String(button.dataset.filter === wanted));
    }
    shown.textContent = `${count} shown`;
  };
  for (const button of buttons) {
    button.addEventListener("click", () => apply(button.dataset.filter));
  }
  toolbar.hidden = false;
  apply("all");
});
