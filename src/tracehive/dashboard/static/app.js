// Completion for the filter box: known fields, then known values of the field being compared.
// Suggestions come from /api/v1/fields (a bounded sample of recent sessions) and are shown with
// textContent only, never as HTML.
"use strict";

const OPERATOR = /((?:[\w-]+|"(?:[^"\\]|\\.)*")(?:\.(?:[\w-]+|"(?:[^"\\]|\\.)*"))*)\s*(=|!=|>=|<=|>|<|contains)\s*(\S*)$/;
const FIELD_TAIL = /(?:[\w-]+|"(?:[^"\\]|\\.)*"|\.)*$/;
const cache = new Map();

function project(input) {
  const form = input.form;
  return form && form.elements.project ? form.elements.project.value.trim() : "";
}

function fetchJson(path, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  const url = `${path}?${query}`;
  if (!cache.has(url)) {
    cache.set(url, fetch(url, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).catch(() => null));
  }
  return cache.get(url);
}

async function suggestionsFor(input, before, fieldsOnly) {
  const scope = { project: project(input) };
  const compared = fieldsOnly ? null : before.match(OPERATOR);
  if (compared) {
    const answer = await fetchJson("/api/v1/fields/values", { ...scope, field: compared[1] });
    const typed = compared[3];
    const values = answer ? answer.values.map((v) => v.value) : [];
    return { start: before.length - typed.length, items: values.filter((v) => v.startsWith(typed)) };
  }
  const typed = fieldsOnly ? before : before.match(FIELD_TAIL)[0];
  const answer = await fetchJson("/api/v1/fields", scope);
  const fields = answer ? answer.fields.map((f) => f.field) : [];
  const lower = typed.toLowerCase();
  const items = typed ? fields.filter((f) => f.toLowerCase().includes(lower) && f !== typed) : fields;
  return { start: before.length - typed.length, items };
}

function attach(input, fieldsOnly) {
  let list = input.parentElement.querySelector("ul.suggestions");
  if (!list) {
    list = document.createElement("ul");
    list.className = "suggestions";
    list.hidden = true;
    input.insertAdjacentElement("afterend", list);
    input.parentElement.classList.add("complete");
  }
  let current = { start: 0, items: [] };
  let active = -1;

  function close() { list.hidden = true; active = -1; }

  function accept(text) {
    const caret = input.selectionStart;
    const tail = input.value.slice(caret);
    const head = input.value.slice(0, current.start) + text + (fieldsOnly ? "" : " ");
    input.value = head + tail;
    input.setSelectionRange(head.length, head.length);
    close();
    input.focus();
  }

  function show(found) {
    current = found;
    list.replaceChildren();
    found.items.slice(0, 30).forEach((item, i) => {
      const li = document.createElement("li");
      li.textContent = item;
      li.addEventListener("mousedown", (e) => { e.preventDefault(); accept(item); });
      if (i === active) li.classList.add("active");
      list.append(li);
    });
    list.hidden = found.items.length === 0;
  }

  async function update() {
    const before = input.value.slice(0, input.selectionStart);
    active = -1;
    show(await suggestionsFor(input, before, fieldsOnly));
  }

  input.addEventListener("input", update);
  input.addEventListener("focus", update);
  input.addEventListener("blur", close);
  input.addEventListener("keydown", (e) => {
    if (list.hidden) return;
    const count = Math.min(current.items.length, 30);
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : count - 1)) % count;
      show(current);
    } else if ((e.key === "Enter" || e.key === "Tab") && active >= 0) {
      e.preventDefault();
      accept(current.items[active]);
    } else if (e.key === "Escape") {
      close();
    }
  });
}

document.querySelectorAll("input[data-complete]").forEach((input) => attach(input, false));
document.querySelectorAll("input[data-complete-field]").forEach((input) => attach(input, true));
