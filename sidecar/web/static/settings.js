/* Settings page: filter the table by name or description, or to the ones set in the environment. */
(function () {
  "use strict";
  const filter = document.getElementById("filter");
  const onlySet = document.getElementById("only-set");
  const rows = [...document.querySelectorAll("#settings tbody tr")];
  function apply() {
    const q = filter.value.trim().toLowerCase();
    for (const row of rows) {
      const text = row.textContent.toLowerCase();
      const show = (!q || text.includes(q)) && (!onlySet.checked || row.dataset.env === "yes");
      row.classList.toggle("hidden", !show);
    }
  }
  filter.addEventListener("input", apply);
  onlySet.addEventListener("change", apply);
})();
