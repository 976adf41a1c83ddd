// txmsg console: plain JavaScript over /api/v1 (no build step, nothing from another host).
"use strict";

const main = document.getElementById("main");
const statusBox = document.getElementById("status");
let me = null;
let signedOutBecause = "";  // why the last session ended, shown on the sign-in page
let unsavedWork = () => false;  // the editor's: typed and not saved yet
window.addEventListener("beforeunload", (e) => { if (unsavedWork()) e.preventDefault(); });

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)txmsg_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

// Reads belong to the page being shown: asking for another page aborts them (route), and a
// page whose reads were aborted never goes on to replace the one asked for since.
let pageReads = new AbortController();
const forever = () => new Promise(() => {});

async function api(method, path, body, extra) {
  const headers = { "X-CSRF-Token": csrf(), ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const signal = method === "GET" ? pageReads.signal : undefined;
  let r, data = null;
  try {
    r = await fetch(path, {
      method, headers, credentials: "same-origin", signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const type = r.headers.get("content-type") || "";
    if (type.includes("json")) data = await r.json();
  } catch (err) {
    if (err.name === "AbortError") return forever();  // another page was asked for since
    // The server is unreachable: every caller shows this as its problem.
    const detail = "The txmsg server cannot be reached; nothing was saved. Try again once it is back.";
    say(detail);
    return { status: 0, ok: false, data: { detail } };
  }
  if (r.status === 401 && path !== "/console/session") {
    // The server's words when they are about the session (expired, key revoked); a cookie
    // gone altogether reads as a missing API key, which means the same here.
    const detail = (data && data.detail) || "";
    signedOutBecause = /session/.test(detail) ? detail : "Your session has ended: sign in again.";
    me = null; route();
  }
  return { status: r.status, ok: r.ok, data, etag: r.headers.get("ETag") };
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// A question asked in the page, not by window.confirm: it reads like the rest of the console,
// a screen reader announces it, Enter answers with the action and Esc cancels. Nothing else on
// the page can be used meanwhile (a modal dialog).
// `cancelFirst`: Enter cancels until the action is chosen (an action that cannot be undone).
function ask(question, action, cancelFirst = false) {
  return new Promise((resolve) => {
    const yes = h("button", { type: "submit", value: "yes" }, action);
    const no = h("button", { type: "button", class: "secondary", onclick: () => box.close("no") }, "Cancel");
    const box = h("dialog", { class: "ask", "aria-labelledby": "ask-question" },
      h("form", { method: "dialog" }, h("p", { id: "ask-question" }, question), h("div", { class: "row" }, yes, no)));
    box.addEventListener("close", () => { box.remove(); resolve(box.returnValue === "yes"); });
    document.body.append(box);
    box.showModal();
    (cancelFirst ? no : yes).focus();
  });
}
// A handler that acts (publishes, sends): a second click while the first is still at work
// (saving, asking, sending) does nothing, rather than act twice.
function oneAtATime(act) {
  let busy = false;
  return async (...args) => {
    if (busy) { if (args[0] && args[0].preventDefault) args[0].preventDefault(); return; }
    busy = true;
    try { return await act(...args); } finally { busy = false; }
  };
}
// The API's words mark names with backticks (`ctx.lastProduct`): shown as code, not as marks.
function withCode(text) {
  return String(text).split(/`([^`\n]+)`/).map((piece, i) => (i % 2 ? h("code", {}, piece) : piece)).filter((x) => x !== "");
}
const noBackticks = (text) => String(text).replace(/`([^`\n]+)`/g, "$1");
function say(text) { statusBox.textContent = text; setTimeout(() => { if (statusBox.textContent === text) statusBox.textContent = ""; }, 6000); }
function problem(res) { return res.data && res.data.detail ? noBackticks(res.data.detail) : "HTTP " + res.status; }
function show(title, ...content) {
  document.title = title + " · txmsg console";
  main.replaceChildren(h("h1", {}, title), ...content.flat(3).filter((c) => c !== null && c !== undefined && c !== false));
  main.focus();
}
function field(id, label, input) { input.id = id; return [h("label", { for: id }, label), input]; }
// The words a marketer reads for an input: its label, not the API's pointer ("addresses[0]").
function labelOf(input) {
  const label = document.querySelector(`label[for="${input.id}"]`);
  return label ? label.textContent : input.id;
}
function describedBy(input, id, on) {
  const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter((x) => x && x !== id);
  if (on) ids.push(id);
  if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
  else input.removeAttribute("aria-describedby");
}
// A problem's errors shown beside the inputs they name (`inputs`: an error's first field
// segment -> its input), in the marketer's words; the rest go to `out`. Earlier ones are
// cleared first. Errors placed beside their fields are also summed up in `out` (read out by
// assistive technology, hidden on screen: they show beside their fields).
function showFieldErrors(res, inputs, out) {
  for (const input of new Set(Object.values(inputs))) {
    input.removeAttribute("aria-invalid");
    describedBy(input, input.id + "-error", false);
    const note = document.getElementById(input.id + "-error");
    if (note) note.remove();
  }
  const rest = [], placed = new Map();
  for (const e of (res.data && res.data.errors) || []) {
    const input = inputs[e.field.split(/[.[]/)[0]];
    if (!input) { rest.push(`${e.field}: ${e.detail}`); continue; }
    // fields[2] of a textarea (one item a line) is its line 3; addresses[0] of an input, itself.
    const index = e.field.match(/^[^.[]+\[(\d+)\]/);
    const where = index && input.tagName === "TEXTAREA" ? `Line ${Number(index[1]) + 1}: ` : "";
    // The API's details go on from its field's name ("is required"): a sentence of their own.
    const whose = /^(is|are|must|cannot|has|should) /.test(e.detail) && !where
      ? (input.type === "email" ? "This address " : labelOf(input) + " ") : "";
    placed.set(input, [...(placed.get(input) || []), where + whose + e.detail]);
  }
  for (const [input, details] of placed) {
    input.setAttribute("aria-invalid", "true");
    describedBy(input, input.id + "-error", true);
    input.after(h("p", { class: "error field-error", id: input.id + "-error", "aria-live": "polite" }, withCode(details.join("; "))));
  }
  if (rest.length || !(res.data && res.data.errors)) { out.textContent = noBackticks(rest.join("; ")) || problem(res); return; }
  const summary = [...placed].map(([input, details]) => {
    const said = noBackticks(details.join("; "));
    return said.startsWith(labelOf(input)) ? said : `${labelOf(input)}: ${said}`;
  }).join(". ");
  out.replaceChildren(summary ? h("span", { class: "visually-hidden" }, summary) : "");
}

// --- sign-in --------------------------------------------------------------------------------
function signIn() {
  const key = h("input", { type: "password", autocomplete: "current-password", required: true });
  const out = h("p", { class: "error", role: "alert" }, signedOutBecause);
  signedOutBecause = "";
  const form = h("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    const res = await api("POST", "/console/session", { api_key: key.value });
    if (!res.ok) { out.textContent = problem(res); return; }
    key.value = "";
    if (!["admin", "marketer"].includes(res.data.role)) { out.textContent = "The console is for admin and marketer keys."; return; }
    me = res.data; route();
  } }, field("api-key", "API key", key), h("div", { class: "row" }, h("button", { type: "submit" }, "Sign in")), out);
  document.getElementById("nav").hidden = true;
  show("Sign in", h("p", {}, "Sign in with an admin or marketer API key. It stays on the server side: the browser keeps a session cookie only."), form);
  key.focus();  // the one thing to do on this page
}

document.getElementById("sign-out").addEventListener("click", async () => {
  await api("DELETE", "/console/session");
  me = null;
  // A new hash routes (hashchange): routing here as well would ask for the page twice.
  if (location.hash === "#/events") route(); else location.hash = "#/events";
});

// --- event configurations -----------------------------------------------------------------
async function eventsPage() {
  const res = await api("GET", "/api/v1/event-configs");
  if (!res.ok) return show("Event configurations", h("p", { class: "error" }, problem(res)));
  const rows = res.data.items.map((e) => h("tr", {},
    h("td", {}, h("a", { href: "#/event/" + e.eventId }, e.eventId)), h("td", {}, e.label || ""),
    h("td", {}, e.state), h("td", {}, e.channel), h("td", {}, e.target), h("td", {}, e.priority),
    h("td", {}, (e.tags || []).join(", "))));
  show("Event configurations",
    me.role === "admin" ? h("p", {}, h("a", { class: "button", href: "#/new" }, "New event configuration")) : null,
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Event", "Label", "State", "Channel", "Target", "Priority", "Tags"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows))));
}

async function newEventPage() {
  const channels = await api("GET", "/api/v1/channel-configs");
  const configs = channels.ok ? channels.data.items : [];
  const id = h("input", { required: true, placeholder: "cartAbandonment" });
  const label = h("input", {});
  const channel = h("select", { onchange: () => offer() }, h("option", { value: "email" }, "email"), h("option", { value: "sms" }, "sms"));
  const cc = h("select", {});
  // Only the configurations of the chosen channel: another one is refused.
  const offer = () => cc.replaceChildren(...configs.filter((c) => c.channel === channel.value).map((c) => h("option", { value: c.name }, c.name)));
  const target = h("select", {}, h("option", { value: "event" }, "event"), h("option", { value: "profile" }, "profile"));
  const priority = h("select", {}, h("option", { value: "transactional" }, "transactional"), h("option", { value: "bulk" }, "bulk"));
  const tags = h("input", { placeholder: "shop, cart" });
  const fields = h("textarea", {}, "firstName:string:required\nlastProduct:string");
  const out = h("p", { class: "error", role: "alert" });
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    const lines = fields.value.split("\n").map((l) => l.trim()).filter(Boolean);
    const parsed = lines.map((l) => {
      const [name, type, req] = l.split(":").map((piece) => piece.trim());
      return { name, type: type || "string", required: (req || "").toLowerCase() === "required", flag: req };
    });
    const odd = parsed.findIndex((f) => f.flag && f.flag.toLowerCase() !== "required");
    if (odd >= 0) {
      showFieldErrors({ data: { errors: [{ field: `fields[${odd}]`, detail: `"${lines[odd]}": the third part can only be "required"` }] } }, inputs, out);
      return;
    }
    for (const f of parsed) delete f.flag;
    const body = { eventId: id.value, label: label.value || id.value, channel: channel.value, channel_config: cc.value,
      target: target.value, priority: priority.value, fields: parsed,
      tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean) };
    const res = await api("POST", "/api/v1/event-configs", body);
    if (!res.ok) { showFieldErrors(res, inputs, out); return; }
    say("Created " + res.data.eventId);
    location.hash = "#/event/" + res.data.eventId;
  } },
    field("ev-id", "Event ID", id), field("ev-label", "Label", label), field("ev-channel", "Channel", channel),
    field("ev-cc", "Channel configuration", cc), field("ev-target", "Target", target),
    field("ev-priority", "Priority", priority), field("ev-tags", "Tags (comma separated)", tags),
    field("ev-fields", "Payload fields (one per line: name:type[:required])", fields),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Create")), out);
  const inputs = { eventId: id, label, channel, channel_config: cc, target, priority, tags, fields };
  offer();
  show("New event configuration", form);
}

const ACTIONS = { draft: ["publish"], published: ["pause", "unpublish"], paused: ["resume", "unpublish"], unpublished: ["publish"] };
// What each action does to the trigger URL and to the events already queued (asked before,
// said after): as the API does it (store/event_configs.py, change_state).
const ACTION_WORDS = {
  publish: ["its trigger URL accepts events from now on, and they are sent once its message is published.",
    "published: its trigger URL accepts events."],
  pause: ["its trigger URL keeps accepting events, but nothing more is sent: new and queued events wait (paused) until it is resumed, or expire (tooOld); a send already under way completes.",
    "paused: events are accepted and wait until it is resumed."],
  resume: ["events waiting (paused) go back to the queue and are sent, as are new ones (once its message is published).",
    "resumed: waiting events are being sent."],
  unpublish: ["its trigger URL answers 404 from now on (other processes follow within seconds), and events still queued or paused are never sent (they end ignored); a send already under way completes.",
    "unpublished: its trigger URL answers 404, and queued events are ignored."],
};

// An event ID that names no event configuration (a stale link, a typo): said plainly.
function noSuchEvent(title, eventId) {
  return show(title, h("p", {}, `No event named ${eventId}. `, h("a", { href: "#/events" }, "See the event configurations")));
}

async function eventPage(eventId) {
  const res = await api("GET", "/api/v1/event-configs/" + eventId);
  if (res.status === 404) return noSuchEvent(eventId, eventId);
  if (!res.ok) return show(eventId, h("p", { class: "error" }, problem(res)));
  const e = res.data;
  const actions = me.role === "admin" ? (ACTIONS[e.state] || []).map((a) => h("button", { type: "button", onclick: oneAtATime(async () => {
    const label = a[0].toUpperCase() + a.slice(1);
    const [what, done] = ACTION_WORDS[a];
    if (!(await ask(`${label} ${eventId}? ${what[0].toUpperCase() + what.slice(1)}`, label, a === "unpublish"))) return;
    const r = await api("POST", `/api/v1/event-configs/${eventId}/${a}`);
    say(r.ok ? `${eventId} is ${done}` : problem(r)); eventPage(eventId);
  }) }, a[0].toUpperCase() + a.slice(1))) : [];
  const SAMPLE = { number: 9.99, integer: 1, boolean: true, array: [], object: {} };
  const preview = e.state === "draft" ? null : {
    url: location.origin + e.trigger_path,
    body: { ...(e.channel === "sms" ? { mobilePhone: "+14155552671" } : { email: "recipient@example.com" }),
      ctx: Object.fromEntries(e.fields.map((f) => [f.name, f.type in SAMPLE ? SAMPLE[f.type] : "sample " + f.name])) },
  };
  const samples = preview ? [
    h("h2", {}, "API preview"),
    h("p", {}, "Trigger URL: ", h("code", {}, preview.url)),
    h("h3", {}, "curl"),
    h("pre", { "aria-label": "curl sample" }, `curl -X POST '${preview.url}' \\\n  -H 'Content-Type: application/json' \\\n  -H 'Authorization: Bearer <trigger key>' \\\n  -d '${JSON.stringify(preview.body)}'`),
    h("h3", {}, "Python"),
    h("pre", { "aria-label": "Python sample" }, `import httpx\n\nhttpx.post(\n    "${preview.url}",\n    headers={"Authorization": "Bearer <trigger key>"},\n    json=${JSON.stringify(preview.body)},\n)`),
  ] : [];
  show(eventId,
    h("p", {}, `${e.label || ""} · state ${e.state} · ${e.channel} · target ${e.target} · ${e.priority}`),
    h("div", { class: "row" }, actions,
      e.state !== "draft" ? h("a", { class: "button", href: "#/editor/" + eventId }, "Edit message") : null,
      me.role === "admin" ? h("a", { class: "button", href: "#/latest/" + eventId }, "Latest events") : null,
      h("a", { class: "button", href: "#/reports/" + eventId }, "Results")),
    h("h2", {}, "Payload fields"),
    h("ul", {}, e.fields.map((f) => h("li", {}, `${f.name} (${f.type}${f.required ? ", required" : ""})`))),
    samples);
}

// --- message editor -------------------------------------------------------------------------
// The lines around a change are usually most of a template: they are matched first, and only
// the changed middle goes through the table (quadratic: past a few million cells, it is shown
// as removed then added, rather than freezing the page).
const MAX_DIFF_CELLS = 4e6;
function lineDiff(a, b) {
  const all = a.split("\n"), other = b.split("\n");
  let head = 0;
  while (head < all.length && head < other.length && all[head] === other[head]) head++;
  let tail = 0;
  while (tail < all.length - head && tail < other.length - head && all[all.length - 1 - tail] === other[other.length - 1 - tail]) tail++;
  const same = (lines) => lines.map((line) => h("div", {}, "  " + line));
  const x = all.slice(head, all.length - tail), y = other.slice(head, other.length - tail);
  return [...same(all.slice(0, head)), ...middleDiff(x, y), ...same(all.slice(all.length - tail))];
}
function middleDiff(x, y) {
  const n = x.length, m = y.length;
  if (n * m > MAX_DIFF_CELLS) {
    return [...x.map((l) => h("div", { class: "diff-del" }, "- " + l)), ...y.map((l) => h("div", { class: "diff-add" }, "+ " + l))];
  }
  const t = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    t[i][j] = x[i] === y[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
  const out = []; let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push(h("div", {}, "  " + x[i])); i++; j++; }
    else if (t[i + 1][j] >= t[i][j + 1]) out.push(h("div", { class: "diff-del" }, "- " + x[i++]));
    else out.push(h("div", { class: "diff-add" }, "+ " + y[j++]));
  }
  while (i < n) out.push(h("div", { class: "diff-del" }, "- " + x[i++]));
  while (j < m) out.push(h("div", { class: "diff-add" }, "+ " + y[j++]));
  return out;
}

function partLabel(p) {
  return { body: "SMS body", html: "HTML", sample_ctx: "Sample data" }[p] || p[0].toUpperCase() + p.slice(1);
}
// A part as the API names it, of any language ("variants.fr.html"), as a marketer reads it
// ("HTML (fr)"); the API's words naming one say it that way too.
function partName(name) {
  const m = String(name).match(/^variants\.([^.]+)\.(.*)$/);
  return m ? `${partLabel(m[2])} (${m[1]})` : partLabel(String(name));
}
const VARIANT_PART = /\bvariants\.([a-z0-9-]+)\.(subject|html|text|body)\b/g;
const partsNamed = (text) => String(text).replace(VARIANT_PART, (_, l, p) => `${partLabel(p)} (${l})`);

async function editorPage(eventId) {
  const [cfg, msg] = await Promise.all([api("GET", "/api/v1/event-configs/" + eventId), api("GET", "/api/v1/messages/" + eventId)]);
  if (cfg.status === 404) return noSuchEvent("Message " + eventId, eventId);
  if (!msg.ok) return show("Message " + eventId, h("p", { class: "error" }, problem(msg)));
  const sms = cfg.data.channel === "sms";
  const parts = sms ? ["body"] : ["subject", "html", "text"];
  const inputs = {}, warnLists = {};
  const draft = msg.data.draft;
  // The texts of every language (the default's under ""): the fields edit one of them, the
  // one chosen in "Language to edit"; a save sends them all.
  const langs = Object.keys(draft.variants || {});
  const texts = { "": Object.fromEntries(parts.map((p) => [p, draft[p] || ""])) };
  for (const l of langs) texts[l] = Object.fromEntries(parts.map((p) => [p, draft.variants[l][p] || ""]));
  let editingLang = "";
  const sync = () => { for (const p of parts) if (inputs[p]) texts[editingLang][p] = inputs[p].value; };
  // A part as the API names it ("variants.fr.html"), as the fields show it now: the part itself
  // when it is of the language edited, else its label and language ("HTML (fr)").
  function partHere(name) {
    const m = name.match(/^variants\.([^.]+)\.(.*)$/);
    const lang = m ? m[1] : "", part = m ? m[2] : name;
    if (lang === editingLang) return part;
    return m || parts.includes(part.split(/[.[]/)[0]) ? `${partLabel(part)} (${lang || "default"})` : name;
  }
  const sample = h("textarea", {}, JSON.stringify(msg.data.sample_ctx, null, 2));
  const desktop = h("iframe", { title: "Preview at desktop width", sandbox: "" });
  const phone = h("iframe", { title: "Preview at phone width", sandbox: "" });
  const subjectOut = h("p", { id: "preview-subject" });
  const smsOut = h("pre", { id: "preview-sms" });
  // What the rendered message costs (SMS) and what a send would do with it: beside the preview.
  const smsFacts = h("p", { id: "preview-sms-facts" });
  const renderWarnings = h("ul", { class: "warnings", id: "preview-warnings", "aria-live": "polite" });
  function showRendered(data) {
    renderWarnings.replaceChildren(...(data.render_warnings || []).map((w) =>
      h("li", { class: w.status ? "blocking" : null }, withCode(w.detail))));
  }
  const errors = h("p", { class: "error", role: "alert", id: "editor-error" });
  const dryOut = h("div", { id: "dry-run" });
  // Whether what is typed is stored: beside the buttons, in its own reserved space (the
  // buttons never move as it changes), read out politely. Nothing is said until something is typed.
  const saveState = h("p", { id: "save-state", class: "save-state", role: "status", "aria-live": "polite" });
  const saveSays = (text) => { if (saveState.textContent !== text) saveState.textContent = text; };
  // Why a save was refused, in a few words: the details are at the fields (or above them).
  function notSavedWhy(res) {
    if (res.status === 0) return "server unreachable";
    if (res.status === 413) return "too large";
    if (res.status >= 500) return `server error (HTTP ${res.status})`;
    return res.data && res.data.errors && res.data.errors.length ? "fix the errors above" : "see the error above";
  }
  let timer = null;
  const options = () => [h("option", { value: "" }, "default"), ...langs.map((l) => h("option", { value: l }, l))];
  const language = h("select", { onchange: () => saveAndPreview(false) }, options());
  // Which language the fields edit: the preview shows it too.
  const editLanguage = h("select", { onchange: () => { switchTo(editLanguage.value); saveAndPreview(false); } }, options());
  let problemShown = null, warningsShown = [];
  function switchTo(lang) {
    sync(); editingLang = lang;
    for (const p of parts) inputs[p].value = texts[editingLang][p];
    editLanguage.value = lang; language.value = lang;
    remove.hidden = !lang; remove.textContent = "Remove language " + lang;
    showWarnings(warningsShown);
    if (problemShown) showProblem(problemShown);
  }
  // The languages changed (added, removed): the selects and the line under the heading follow.
  const heading = h("p", {});
  function languagesShown() {
    for (const select of [editLanguage, language]) {
      const was = select.value;
      select.replaceChildren(...options());
      select.value = langs.includes(was) ? was : "";
    }
    heading.textContent = (msg.data.published ? `Published version ${msg.data.published.version}` : "Not published yet") +
      (langs.length ? " · languages: default, " + langs.join(", ") : " · language: default");
  }
  languagesShown();

  // A refused save's or render's errors, shown at the parts they name (as errors, beside
  // each part's warnings); a draft too large to take, at its largest part, in plain words.
  function showProblem(res) {
    problemShown = res;
    let shown = res;
    if (res.status === 413) {
      const limit = Number((problem(res).match(/limit of (\d+) bytes/) || [])[1]);
      const mb = limit ? Math.round((limit / 1048576) * 10) / 10 : 0;
      const largest = parts.reduce((a, b) => (inputs[b].value.length > inputs[a].value.length ? b : a));
      shown = { data: { errors: [{ field: largest, detail: "This template is too large: " + (mb ? `at most ${mb} MB` : "make it shorter") }] } };
    } else if (res.data && res.data.errors) {
      // A render's data is the sample data here: a name it lacks is said to be missing there.
      shown = { ...res, data: { ...res.data, errors: res.data.errors.map((e) => ({ ...e,
        field: partHere(e.field),
        detail: e.detail.replace(/^line (\d+): /, "Line $1: ").replace(/ is not in the data$/, " is not in the sample data") })) } };
    }
    showFieldErrors(shown, inputs, errors);
    const away = elsewhere(res);
    if (away.length) errors.append(" ", ...away.map(([l, p]) => h("button", { type: "button", class: "secondary",
      onclick: () => goTo(l, p) }, `Edit ${partLabel(p)} (${l || "default"})`)));
  }
  // The parts of another language than the one edited that `res`'s errors name: [language, part].
  function elsewhere(res) {
    const found = new Map();
    for (const e of (res && res.data && res.data.errors) || []) {
      const m = String(e.field).match(/^(?:variants\.([^.]+)\.)?([^.[]+)/);
      const lang = (m && m[1]) || "";
      if (m && parts.includes(m[2]) && lang !== editingLang && Object.hasOwn(texts, lang)) found.set(lang + "." + m[2], [lang, m[2]]);
    }
    return [...found.values()];
  }
  // The fields edit `lang`, its `part` (shown in error there) has the focus, in view.
  function goTo(lang, part) {
    switchTo(lang);
    saveAndPreview(false);
    inputs[part].scrollIntoView({ block: "center" });
    inputs[part].focus({ preventScroll: true });
  }
  const clearProblems = () => { problemShown = null; showFieldErrors({ data: { errors: [] } }, inputs, errors); sample.removeAttribute("aria-invalid"); };
  // Refused for errors (Publish, Dry run, a proof): the first field in error takes the focus,
  // in view, rather than a message at the bottom pointing at something scrolled away.
  function toFirstError() {
    // The template's fields only: a language code refused is not the draft's error.
    const bad = [...parts.map((p) => inputs[p]), sample].find((x) => x.getAttribute("aria-invalid") === "true");
    // In error only in another language: the editor goes to that language and part.
    if (!bad) { const [away] = elsewhere(problemShown); if (away) goTo(...away); return; }
    bad.scrollIntoView({ block: "center" });
    bad.focus({ preventScroll: true });
  }
  // What the preview shows is of the last draft saved and rendered: once what is typed cannot
  // be, the preview is emptied and says why (not the old message beside fields that differ).
  const outdated = h("p", { class: "outdated", id: "preview-outdated", hidden: true });
  function previewOutdated(why = "Preview out of date: fix the errors above.") {
    renderWarnings.replaceChildren();
    smsFacts.textContent = ""; smsOut.textContent = ""; subjectOut.textContent = "";
    desktop.srcdoc = ""; phone.srcdoc = "";
    outdated.textContent = why; outdated.hidden = false;
  }
  function showWarnings(list) {
    warningsShown = list || [];
    for (const p of parts) warnLists[p].replaceChildren();
    for (const w of list || []) {
      const part = partHere(w.part || "");
      const target = warnLists[part] || warnLists[parts[0]];
      target.append(h("li", {}, warnLists[part] ? "" : part + ", ", w.line ? `Line ${w.line}${w.column ? ", column " + w.column : ""}: ` : "", withCode(w.detail.replace(/^line \d+: /, ""))));
    }
  }
  // One save at a time, in order, each reading the fields when it starts: a slow save never
  // lands after a newer one (and puts older text back). Opening the page saves nothing.
  let saving = Promise.resolve();
  let unsaved = false; // the last save asked for failed: the stored draft is not what is typed
  // Every save names the draft it was typed over (If-Match: its ETag), so a draft someone else
  // saved since is refused (412), never overwritten. Saving then stops; what was typed stays.
  let etag = msg.etag;
  let base = null; // the fields as last loaded or saved: what the marketer typed differs from it
  let stale = false; // someone else saved since: nothing is saved or published from this page
  unsavedWork = () => timer !== null || unsaved || (stale && typed() !== base);
  // What is typed is kept in this tab until it is saved: a session that ends, a reload or
  // another page opened meanwhile gives it back when the editor opens again (with the ETag it
  // was typed over: it is saved only if nobody else saved since).
  const kept = "txmsg-edit:" + eventId;
  // What was typed over a version someone else replaced: shown beside the latest, to copy back.
  const aside = "txmsg-aside:" + eventId;
  // `adding`: a language being added, a copy of the default's texts.
  const typed = (adding = null) => {
    sync();
    const flat = { ...texts[""] };
    for (const l of langs) for (const p of parts) flat[`variants.${l}.${p}`] = texts[l][p];
    if (adding !== null) for (const p of parts) flat[`variants.${adding}.${p}`] = texts[""][p];
    return JSON.stringify({ ...flat, sample_ctx: sample.value });
  };
  const keep = () => sessionStorage.setItem(kept, JSON.stringify({ typed: typed(), etag, base, languages: langs }));
  const conflict = h("div", { class: "conflict", role: "alert", id: "editor-conflict" });
  function changedSince() {
    stale = true;
    conflict.replaceChildren(
      h("p", {}, "Someone else changed this message since you opened it. So that their changes are not lost, yours are not saved (nor published): what you typed stays in the fields."),
      h("p", {}, "Load the latest version to see their changes: the fields then show it, and what you typed here is kept beside it, for you to copy back what you need."),
      h("div", { class: "row" }, h("button", { type: "button", onclick: loadLatest }, "Load the latest version")));
  }
  function loadLatest() {
    const now = JSON.parse(typed()), was = JSON.parse(base);
    const mine = JSON.parse(sessionStorage.getItem(aside) || "{}");
    for (const [p, v] of Object.entries(now)) if (v !== was[p]) mine[p] = v;
    if (Object.keys(mine).length) sessionStorage.setItem(aside, JSON.stringify(mine));
    sessionStorage.removeItem(kept);
    stale = false; unsaved = false; clearTimeout(timer); timer = null;
    editorPage(eventId);
  }
  // `adding`: a language to add (a copy of the default's texts) with this save; it is added
  // once saved, and the answer says so (`added`), else is the refused save's.
  function saveAndPreview(save = true, adding = null) {
    saving = saving.then(() => savePreview(save, adding), () => savePreview(save, adding));
    return saving;
  }
  async function savePreview(save, adding = null) {
    if (save && stale) return;
    let ctx;
    try { ctx = JSON.parse(sample.value); } catch (e) {
      clearProblems(); errors.textContent = "Sample data is not valid JSON"; sample.setAttribute("aria-invalid", "true");
      if (save) saveSays("Not saved: the sample data is not valid JSON");
      unsaved ||= save; previewOutdated(); return;
    }
    let added = null;
    if (save) {
      sync();
      const body = { ...texts[""] };
      const variants = Object.fromEntries(langs.map((l) => [l, { ...texts[l] }]));
      if (adding !== null) variants[adding] = { ...texts[""] };
      if (draft.variants || Object.keys(variants).length) body.variants = variants;
      body.sample_ctx = ctx;
      const sent = typed(adding);
      const said = saveState.textContent;
      saveSays("Saving…");
      const saved = await api("PUT", `/api/v1/messages/${eventId}/draft`, body, etag ? { "If-Match": etag } : {});
      // A language refused (its code) is not added: the draft stored is as it was, and the
      // language's field says why.
      if (adding !== null && !saved.ok && saved.status !== 412) { saveSays(said); return saved; }
      unsaved = !saved.ok;
      if (saved.status === 412) {
        saveSays("Not saved: someone else changed this message");
        changedSince(); previewOutdated("Preview out of date: what you typed is not saved (see above)."); return saved;
      }
      if (!saved.ok) { saveSays("Not saved: " + notSavedWhy(saved)); showProblem(saved); showWarnings([]); previewOutdated(); return saved; }
      if (adding !== null) {
        texts[adding] = variants[adding]; langs.push(adding); languagesShown(); switchTo(adding);
        added = { added: adding };
      }
      etag = saved.etag; base = sent;
      // Typed again meanwhile: that is still to be saved (its save is already on its way).
      saveSays(timer === null && typed() === sent ? "Saved" : "Saving…");
      if (typed() === sent) sessionStorage.removeItem(kept); else keep();
      clearProblems();
      showWarnings(saved.data.warnings);
    }
    const res = await api("POST", `/api/v1/messages/${eventId}/preview`, language.value ? { ctx, language: language.value } : { ctx });
    if (!res.ok) { showProblem(res); previewOutdated(); return added; }
    if (!unsaved) clearProblems();
    outdated.hidden = true;
    showRendered(res.data);
    if (sms) {
      const d = res.data;
      smsOut.textContent = d.text;
      const n = (count, what) => `${count.toLocaleString("en")} ${what}${count === 1 ? "" : "s"}`;
      smsFacts.textContent = `${n(d.characters, "character")} · ${d.encoding} · ${n(d.segments, "segment")}`;
      return added;
    }
    subjectOut.textContent = "Subject: " + (res.data.subject || "");
    const html = res.data.html || h("pre", {}, res.data.text || "").outerHTML;
    desktop.srcdoc = html; phone.srcdoc = html;
    return added;
  }
  function changed() {
    keep();
    if (stale) return;
    saveSays("Saving…");
    clearTimeout(timer); timer = setTimeout(() => { timer = null; saveAndPreview(); }, 400);
  }
  // Publishing, a dry run or a proof acts on the stored draft: what was typed is saved first,
  // and nothing is done while it cannot be (the error is shown).
  async function saved() {
    if (timer !== null) { clearTimeout(timer); timer = null; saveAndPreview(); }
    await saving;
    return !unsaved && !stale;
  }
  // Publishing acts on the stored draft: never on one someone else saved since this page saw it.
  async function seen() {
    const now = await api("GET", "/api/v1/messages/" + eventId);
    if (!now.ok) { errors.textContent = problem(now); return false; }
    if (now.etag !== etag) { changedSince(); return false; }
    return true;
  }
  const notDone = (what) => stale
    ? `${what}: someone else changed this message since you opened it (see above).`
    : `${what}: the draft cannot be saved. Fix the errors above first.`;
  // The draft as typed is saved, and is the one stored: else says why not.
  async function ready(what) {
    if (!(await saved())) { say(notDone(what)); toFirstError(); return false; }
    if (!(await seen())) { say(stale ? notDone(what) : `${what}: ${errors.textContent}`); toFirstError(); return false; }
    return true;
  }
  const editors = parts.map((p) => {
    inputs[p] = h(p === "subject" ? "input" : "textarea", { oninput: changed, rows: p === "html" ? 12 : 5, "aria-describedby": "warn-" + p });
    inputs[p].value = draft[p] || "";
    warnLists[p] = h("ul", { class: "warnings", id: "warn-" + p, "aria-live": "polite" });
    return [field("part-" + p, partLabel(p), inputs[p]), warnLists[p]];
  });
  sample.addEventListener("input", changed);

  const versions = msg.data.versions.map((v) => v.version);
  const va = h("select", {}, versions.map((v) => h("option", { value: v }, "v" + v)));
  const vb = h("select", {}, h("option", { value: "draft" }, "draft"), versions.map((v) => h("option", { value: v }, "v" + v)));
  const diffOut = h("pre", { id: "version-diff" }, versions.length ? "" : "Nothing is published yet: there is no version to compare with.");
  async function version(v) {
    if (v === "draft") { sync(); return { ok: true, data: { ...texts[""] } }; }
    return api("GET", `/api/v1/messages/${eventId}/versions/${v}`);
  }
  const compare = h("button", { type: "button", class: "secondary", disabled: !versions.length, onclick: async () => {
    if (!va.value) return;  // nothing published yet: nothing to compare with
    const [a, b] = await Promise.all([version(va.value), version(vb.value)]);
    // A version that did not load is said so: compared with nothing, every line would read as added.
    const failed = [[va.value, a], [vb.value, b]].find(([, r]) => !r.ok);
    if (failed) {
      const [v, r] = failed;
      diffOut.replaceChildren(`Version ${v} could not be loaded: ${(r.data && r.data.detail) || "HTTP " + r.status}`);
      return;
    }
    diffOut.replaceChildren(...parts.flatMap((p) => [h("strong", {}, p), h("br"), ...lineDiff(a.data[p] || "", b.data[p] || "")]));
  } }, "Compare versions");

  // "HTML, line 2: division by zero" (the API's reason starts "line 2: " when it has a line).
  const failedWhy = (reason) => {
    if (!reason) return "";
    const m = reason.match(/^line (\d+): ([^]*)$/);
    return m ? `, line ${m[1]}: ${m[2]}` : `: ${reason}`;
  };
  // The last dry run's failures, and the draft it ran on: Publish asks knowing them.
  let lastDry = null;
  const dry = h("button", { type: "button", class: "secondary", onclick: async () => {
    if (!(await saved())) { say(notDone("No dry run")); toFirstError(); return; }
    const ran = typed();
    const r = await api("POST", `/api/v1/messages/${eventId}/publish?dry_run=true`);
    if (!r.ok) { dryOut.replaceChildren(h("p", { class: "error" }, partsNamed(problem(r)))); return; }
    const d = r.data;
    // Languages no recent event's profile uses are rendered once with the latest payload.
    const checks = d.variant_checks || [];
    const badChecks = checks.filter((c) => !c.rendered);
    lastDry = { failed: d.failed.length, events: d.events, languages: badChecks.length, typed: ran };
    // A warning of a language's part says which ("HTML (fr): ..."); the default's as before.
    const warnedWhy = (w) => [w.part.startsWith("variants.") ? `${partName(w.part)}: ` : "", withCode(w.detail)];
    const checkWarnings = checks.flatMap((c) => (c.render_warnings || []).map((w) => ({ ...w, PKey: `${c.language}, no recent event` })));
    const warned = [...d.render_warnings, ...checkWarnings];
    // A failure in a language not edited: a button takes the editor to that language and part.
    const away = elsewhere({ data: { errors: [...d.failed, ...badChecks].map((f) => ({ field: f.part })) } });
    dryOut.replaceChildren(h("div", {},
      h("p", {}, `Dry run: ${d.rendered} of ${d.events} recent events render.`),
      d.failed.length ? h("ul", {}, d.failed.map((f) => h("li", { class: "error" },
        withCode(`${f.PKey}: ${partName(f.part)}${failedWhy(f.reason)}`)))) : null,
      checks.length ? h("p", {}, `Languages no recent event uses, rendered with the latest event's data: ${checks.length - badChecks.length} of ${checks.length} render.`) : null,
      badChecks.length ? h("ul", {}, badChecks.map((c) => h("li", { class: "error" },
        withCode(`${c.language}: ${partName(c.part)}${failedWhy(c.reason)}`)))) : null,
      away.length ? h("p", {}, ...away.map(([l, p]) => h("button", { type: "button", class: "secondary",
        onclick: () => goTo(l, p) }, `Edit ${partLabel(p)} (${l || "default"})`))) : null,
      warned.length ? h("ul", { class: "warnings" }, warned.map((w) => h("li", { class: w.status ? "blocking" : null }, `${w.PKey}: `, ...warnedWhy(w)))) : null,
      d.sample.map((s) => h("details", {}, h("summary", {}, "Difference for " + s.PKey),
        h("pre", {}, Object.values(s.diff).join("\n") || "no difference")))));
  } }, "Dry run");
  const publish = h("button", { type: "button", onclick: oneAtATime(async () => {
    // Asked only of a draft that can be published: else, why not (not a silent no).
    if (!(await ready("Not published"))) return;
    const earlier = lastDry && lastDry.typed !== typed() ? ", of an earlier draft," : "";
    const langs = lastDry && lastDry.languages ? `${lastDry.languages} language${lastDry.languages > 1 ? "s" : ""} no recent event uses` : "";
    const dryFailed = lastDry && lastDry.failed
      ? ` The last dry run${earlier} failed for ${lastDry.failed} of ${lastDry.events} recent events${langs ? " and for " + langs : ""}.`
      : langs ? ` The last dry run${earlier} failed for ${langs}.` : "";
    if (!(await ask(`Publish the draft of ${eventId}? Every event sent from now on uses it.${dryFailed}`, "Publish"))) return;
    if (!(await ready("Not published"))) return;  // another tab may have saved meanwhile
    const r = await api("POST", `/api/v1/messages/${eventId}/publish`);
    if (r.ok) { say(`Published version ${r.data.version}`); editorPage(eventId); return; }
    errors.textContent = partsNamed(problem(r));
    if (r.data && r.data.warnings) showWarnings(r.data.warnings);
  }) }, "Publish");

  const proofTo = h("input", { type: "email", autocomplete: "email", required: true });
  const proofOut = h("p", { role: "status" });
  const proofFields = { addresses: proofTo };
  const noErrors = { data: { errors: [] } };
  const proof = h("form", { onsubmit: oneAtATime(async (e) => {
    e.preventDefault();
    showFieldErrors(noErrors, proofFields, proofOut);
    let ctx; try { ctx = JSON.parse(sample.value); } catch (err) { proofOut.textContent = "Sample data is not valid JSON"; toFirstError(); return; }
    if (!(await saved())) { proofOut.textContent = "The draft could not be saved: see the error above."; toFirstError(); return; }
    const tp = await api("PUT", "/api/v1/test-profiles/console-" + eventId.toLowerCase(), { eventId, ctx });
    if (!tp.ok) { proofOut.textContent = problem(tp); return; }
    const r = await api("POST", `/api/v1/messages/${eventId}/proof`, { test_profile: "console-" + eventId.toLowerCase(), addresses: [proofTo.value] });
    // A refused address (not an email address, on the suppression list) is shown beside it.
    showFieldErrors(r.ok ? noErrors : r, proofFields, proofOut);
    if (!r.ok) return;
    // 200 says the request was taken; each address's result says whether its proof went out.
    const failed = r.data.results.filter((x) => x.status !== "sent");
    proofOut.textContent = failed.length
      ? failed.map((x) => `Proof not sent to ${x.address}: ${x.reason}`).join("; ")
      : "Proof sent to " + proofTo.value;
  }) }, field("proof-to", "Send a proof to", proofTo), h("div", { class: "row" }, h("button", { type: "submit", class: "secondary" }, "Send proof")));

  // Adding a language: its code checked by the API (its own words, at the field), a copy of
  // the default's texts saved into the draft, then edited in the fields.
  const newLanguage = h("input", { autocomplete: "off", spellcheck: "false", autocapitalize: "none", "aria-describedby": "new-language-hint" });
  const languageOut = h("p", { class: "error", id: "language-error", "aria-live": "polite" });
  const languageField = { variants: newLanguage };
  const refuseLanguage = (res) => { showFieldErrors(res, languageField, languageOut); newLanguage.focus(); };
  const addLanguage = h("form", { class: "languages", onsubmit: oneAtATime(async (e) => {
    e.preventDefault();
    showFieldErrors({ data: { errors: [] } }, languageField, languageOut);
    const code = newLanguage.value.trim();
    if (code && Object.hasOwn(texts, code)) {
      refuseLanguage({ data: { errors: [{ field: "variants", detail: `This message already has the language ${code}: choose it in "Language to edit".` }] } });
      return;
    }
    if (!(await saved())) { languageOut.textContent = notDone("Language not added"); toFirstError(); return; }
    const r = await saveAndPreview(true, code);
    if (r && r.added) {
      newLanguage.value = "";
      inputs[parts[0]].focus();
      say(`Added ${code}, a copy of the default content: the fields now edit ${code}.`);
      return;
    }
    if (!r || r.status === 412) { languageOut.textContent = notDone("Language not added"); return; }
    refuseLanguage(r);
  }) }, h("fieldset", {}, h("legend", {}, "Add a language"),
    field("new-language", "Language code", newLanguage),
    h("p", { class: "hint", id: "new-language-hint" }, "A language tag such as fr or pt-br. The new language starts as a copy of the default content, to translate."),
    h("div", { class: "row" }, h("button", { type: "submit", class: "secondary" }, "Add language")), languageOut));
  // Removing the language edited, once asked: like any edit, saved into the draft only.
  const publishedLangs = Object.keys((msg.data.published && msg.data.published.variants) || {});
  const remove = h("button", { type: "button", class: "secondary", hidden: true, onclick: oneAtATime(async () => {
    const lang = editingLang;
    const still = publishedLangs.includes(lang)
      ? ` The published version keeps sending ${lang} until you publish.`
      : ` The published version has no ${lang}: it is not changed.`;
    if (!(await ask(`Remove the language ${lang} from the draft? Its texts in the draft are deleted.${still}`, "Remove " + lang, true))) {
      remove.focus(); return;
    }
    switchTo("");
    delete texts[lang]; langs.splice(langs.indexOf(lang), 1);
    // Its errors and warnings went with it.
    const gone = (name) => String(name || "").startsWith(`variants.${lang}.`);
    if (problemShown && problemShown.data && problemShown.data.errors) {
      problemShown = { ...problemShown, data: { ...problemShown.data, errors: problemShown.data.errors.filter((e) => !gone(e.field)) } };
      showProblem(problemShown);
    }
    showWarnings(warningsShown.filter((w) => !gone(w.part)));
    languagesShown();
    editLanguage.focus();
    say(`Removed ${lang} from the draft.${still}`);
    changed();
  }) }, "Remove language");

  const mine = JSON.parse(sessionStorage.getItem(aside) || "null");
  const yours = mine && h("section", { "aria-label": "Your text, not saved", id: "your-text", class: "conflict" },
    h("h2", {}, "Your text, not saved"),
    h("p", {}, "You typed this over a version someone else has replaced since. The fields below show the latest version: copy back what you need, then discard this."),
    Object.entries(mine).map(([p, v]) => field("yours-" + p.replace(/\./g, "-"), "Your unsaved " + partName(p).replace(/^[A-Z](?=[a-z])/, (c) => c.toLowerCase()), h("textarea", { readonly: true, rows: 4 }, v))),
    h("div", { class: "row" }, h("button", { type: "button", class: "secondary", onclick: () => {
      sessionStorage.removeItem(aside); yours.remove();
    } }, "Discard your unsaved text")));
  show("Message " + eventId,
    heading,
    yours,
    h("div", { class: "editor" },
      h("section", { "aria-label": "Template" }, conflict, field("edit-language", "Language to edit", editLanguage),
        h("div", { class: "row" }, remove), addLanguage, editors, field("sample-ctx", "Sample data (ctx, JSON)", sample), errors,
        h("div", { class: "row" }, dry, publish, saveState), dryOut,
        sms ? h("p", {}, "Proofs are sent by email, to an email event's channel: trigger the event to test an SMS.") : [proof, proofOut]),
      h("section", { "aria-label": "Preview" }, h("h2", {}, "Preview"), field("preview-language", "Preview language", language), renderWarnings, outdated, sms ? [smsFacts, smsOut] : [subjectOut,
        h("div", { class: "previews" }, h("div", { class: "frame desktop" }, h("h3", {}, "Desktop"), desktop),
          h("div", { class: "frame phone" }, h("h3", {}, "Phone (320 px)"), phone))])),
    h("h2", {}, "Versions"),
    h("div", { class: "row" }, field("version-a", "From", va), field("version-b", "To", vb), compare), diffOut);
  showWarnings(msg.data.warnings);
  base = typed();
  const restored = JSON.parse(sessionStorage.getItem(kept) || "null");
  if (restored) {
    const fields = restored.typed ? JSON.parse(restored.typed) : restored; // older pages kept the fields alone
    // Languages added or removed and not saved yet are so again.
    const were = restored.languages || langs;
    for (const l of were) if (!Object.hasOwn(texts, l)) { texts[l] = { ...texts[""] }; langs.push(l); }
    for (const l of [...langs]) if (!were.includes(l)) { delete texts[l]; langs.splice(langs.indexOf(l), 1); }
    languagesShown();
    for (const p of parts) texts[""][p] = fields[p] ?? texts[""][p];
    for (const l of langs) for (const p of parts) texts[l][p] = fields[`variants.${l}.${p}`] ?? texts[l][p];
    for (const p of parts) inputs[p].value = texts[editingLang][p];
    sample.value = fields.sample_ctx ?? sample.value;
    if (restored.etag) { etag = restored.etag; base = restored.base ?? base; }
    say("Your unsaved changes are back: they are being saved.");
    return saveAndPreview();
  }
  saveAndPreview(false);
}

// --- latest events, results, export flows ------------------------------------------------------
const STATUSES = ["", "pending", "processing", "paused", "processed", "ignored", "deliveryFailed", "routingFailed", "tooOld", "targetingFailed"];
async function latestPage(eventId) {
  const filter = h("select", { onchange: () => load() }, STATUSES.map((s) => h("option", { value: s }, s || "any status")));
  const body = h("tbody");
  async function load() {
    const q = filter.value ? "&status=" + filter.value : "";
    const r = await api("GET", `/api/v1/events/${eventId}?limit=50${q}`);
    if (!r.ok) { body.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "error" }, problem(r)))); return; }
    if (!r.data.items.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 5 }, filter.value ? `No events with status ${filter.value}.` : "No events yet.")));
      return;
    }
    body.replaceChildren(...r.data.items.map((ev) => {
      const log = h("td", {}, h("button", { type: "button", class: "secondary", onclick: async (e) => {
        const l = await api("GET", ev.delivery_log);
        // The button gives way to the list, which takes the focus (not lost to the page).
        const list = h("ul", { tabindex: "-1", "aria-label": "Delivery log of " + ev.PKey },
          l.ok ? (l.data.items || []).map((i) => h("li", {}, `${i.kind} ${i.at}`)) : h("li", { class: "error" }, problem(l)));
        e.target.replaceWith(list);
        list.focus();
      } }, "Delivery log"));
      return h("tr", {}, h("td", {}, ev.PKey), h("td", {}, ev.status), h("td", {}, ev.reason || ""), h("td", {}, ev.eventDate), log);
    }));
  }
  show("Latest events of " + eventId, field("status-filter", "Status", filter),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["PKey", "Status", "Reason", "Date", "Delivery log"].map((t) => h("th", { scope: "col" }, t)))), body)));
  load();
}

const METRICS = [["sent", "#0b5cad"], ["delivered", "#1d6b33"], ["opened", "#8a4b00"], ["clicked", "#6a1b9a"], ["bounced", "#a4161a"]];
// Drawn one over the other, equal counts (all sent delivered) would hide a line: sent is drawn
// wide underneath, the others dashed apart.
const STROKES = { sent: ["6", null], delivered: ["2.5", "8 4"], opened: ["2", null], clicked: ["2", "3 3"], bounced: ["2", "1 3"] };
// What did not go out, or came back: in the table (and its totals), not in the chart.
const FAILURES = ["failed", "ignored", "spam", "unsubscribed"];
// The reports count hard and soft bounces apart; the chart shows them together.
function metric(d, m) { return m === "bounced" ? (d.bounced_hard || 0) + (d.bounced_soft || 0) : d[m] || 0; }
async function reportsPage(eventId) {
  const r = await api("GET", "/api/v1/reports/" + eventId);
  if (r.status === 404) return noSuchEvent("Results of " + eventId, eventId);
  if (!r.ok) return show("Results of " + eventId, h("p", { class: "error" }, problem(r)));
  const days = r.data.days;
  const max = Math.max(1, ...days.flatMap((d) => METRICS.map(([m]) => metric(d, m))));
  const ns = "http://www.w3.org/2000/svg", W = 700, H = 250, left = 56, right = 24, top = 16, bottom = 34;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("class", "chart"); svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Results per day: " + METRICS.map(([m]) => m).join(", ") + " (the table below has the figures)");
  const draw = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.append(el); return el;
  };
  const y = (v) => H - bottom - (v / max) * (H - top - bottom);
  const step = days.length > 1 ? (W - left - right) / (days.length - 1) : 0;
  // The scale: the axes, the top's count, the first and last days.
  draw("line", { x1: left, x2: W - right, y1: y(max), y2: y(max), stroke: "#c9ced4", "stroke-dasharray": "4 4" });
  draw("line", { x1: left, x2: left, y1: top, y2: H - bottom, stroke: "#4a5159" });
  draw("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, stroke: "#4a5159" });
  draw("text", { x: left - 6, y: y(max) + 4, "text-anchor": "end", class: "axis", "data-axis": "max" }, max.toLocaleString("en"));
  draw("text", { x: left - 6, y: H - bottom + 4, "text-anchor": "end", class: "axis" }, "0");
  if (days.length) {
    draw("text", { x: left, y: H - 10, "text-anchor": "start", class: "axis", "data-axis": "first" }, days[0].day);
    if (days.length > 1) draw("text", { x: W - right, y: H - 10, "text-anchor": "end", class: "axis", "data-axis": "last" }, days[days.length - 1].day);
  }
  for (const [m, color] of METRICS) {
    const pts = days.map((d, i) => `${left + i * step},${y(metric(d, m))}`).join(" ");
    const [width, dash] = STROKES[m];
    draw("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": width, "stroke-dasharray": dash,
      "stroke-opacity": m === "sent" ? "0.45" : null, "data-metric": m });
  }
  const total = r.data.total || {};
  const n = (v) => (v || 0).toLocaleString("en");
  const hard = total.bounced_hard || 0;
  const columns = [...METRICS.map(([m]) => m), ...FAILURES];
  show("Results of " + eventId,
    h("p", {}, `${r.data.from} to ${r.data.to} · `, h("a", { href: `/api/v1/reports/${eventId}?format=csv`, download: "" }, "Download CSV")),
    h("p", { id: "results-total" }, `In all: ${n(total.sent)} sent, ${n(total.delivered)} delivered, ${n(total.opened)} opened, ${n(total.clicked)} clicked; `,
      h(FAILURES.some((m) => total[m]) || metric(total, "bounced") ? "strong" : "span", {},
        `${n(total.failed)} failed, ${n(total.ignored)} ignored, ${n(metric(total, "bounced"))} bounced (${n(hard)} hard), ${n(total.spam)} marked as spam, ${n(total.unsubscribed)} unsubscribed`), "."),
    svg, h("p", { class: "legend" }, METRICS.map(([m, c]) => h("span", {}, h("span", { class: "swatch", style: "background:" + c }), m))),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day"), columns.map((m) => h("th", { scope: "col" }, m)))),
      h("tbody", {}, days.map((d) => h("tr", {}, h("td", {}, d.day), columns.map((m) => h("td", {}, metric(d, m)))))))));
}

async function exportsPage() {
  const r = await api("GET", "/api/v1/export-flows");
  if (!r.ok) return show("Export flows", h("p", { class: "error" }, problem(r)));
  const rows = await Promise.all(r.data.items.map(async (f) => {
    const runs = await api("GET", `/api/v1/export-flows/${f.name}/runs`);
    const last = runs.ok && runs.data.items.length ? runs.data.items[0] : null;
    return h("tr", {}, h("td", {}, f.name), h("td", {}, f.format), h("td", {}, JSON.stringify(f.destination || {})),
      h("td", {}, last ? `${last.status || ""} ${last.finished_at || last.started_at || ""}` : "never run"));
  }));
  show("Export flows", h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Name", "Format", "Destination", "Last run"].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows))));
}

// --- routing -----------------------------------------------------------------------------------
// Pages of admin keys only: a marketer who opens one (a link, a bookmark) is told so.
const ADMIN_PAGES = { new: "New event configuration", latest: "Latest events", exports: "Export flows" };
async function route() {
  unsavedWork = () => false;
  for (const open of document.querySelectorAll("dialog.ask")) open.close();  // asked on the page left
  pageReads.abort();
  pageReads = new AbortController();
  if (!me) {
    const res = await api("GET", "/console/session");
    if (!res.ok || !["admin", "marketer"].includes(res.data.role)) return signIn();
    me = res.data;
  }
  const nav = document.getElementById("nav");
  nav.hidden = false;
  document.getElementById("who").textContent = "Signed in as " + me.role;
  for (const a of nav.querySelectorAll("[data-admin]")) a.hidden = me.role !== "admin";
  const [, page, arg] = (location.hash || "#/events").split("/");
  if (ADMIN_PAGES[page] && me.role !== "admin") {
    return show(ADMIN_PAGES[page], h("p", {}, "This page needs an admin key: sign out and sign in with one to see it."));
  }
  // A page of one event without its ID (#/editor, #/event/): the events, to choose one.
  if (["event", "editor", "latest", "reports"].includes(page) && !arg) {
    history.replaceState(null, "", "#/events");
    return eventsPage();
  }
  if (page === "new") return newEventPage();
  if (page === "event") return eventPage(arg);
  if (page === "editor") return editorPage(arg);
  if (page === "latest") return latestPage(arg);
  if (page === "reports") return reportsPage(arg);
  if (page === "exports") return exportsPage();
  return eventsPage();
}
window.addEventListener("hashchange", route);
// Another tab may have signed in with another key since (the cookie is the browser's): back
// on this one, the pages follow the session's role.
window.addEventListener("focus", async () => {
  if (!me) return;
  const r = await api("GET", "/console/session");
  if (r.ok && (r.data.role !== me.role || r.data.key_id !== me.key_id)) { me = r.data; route(); }
});
route();
