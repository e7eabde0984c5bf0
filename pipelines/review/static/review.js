// buildwatch review page. Text from the data reaches the page only through textContent.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const $ = (id) => document.getElementById(id);
  const S = {
    items: [], idx: -1, detail: null, mode: "side", blink: null,
    rejecting: false, reasons: [], options: null,
    queueSeq: 0, caseSeq: 0,  // the latest request of each kind; older answers are dropped
  };
  // this tab's verdicts, newest last, kept across reloads for undo
  S.undo = JSON.parse(sessionStorage.getItem("bw-undo") || "[]");
  const saveUndo = () => sessionStorage.setItem("bw-undo", JSON.stringify(S.undo.slice(-50)));
  // key press -> stored verdict, ms (read by the browser test and shown in the console)
  window.bwTimings = [];

  const whoBox = $("who");
  whoBox.value = localStorage.getItem("bw-who") || document.querySelector('meta[name="who"]').content;
  whoBox.addEventListener("change", () => localStorage.setItem("bw-who", whoBox.value.trim()));

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function say(text, ok) {
    const m = $("msg");
    m.textContent = text || "";
    m.className = ok ? "ok" : "";
  }
  function params() {
    const p = new URLSearchParams();
    for (const s of $("filters").querySelectorAll("select")) if (s.value) p.set(s.name, s.value);
    return p;
  }
  async function api(path, body) {
    const opts = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    };
    const r = await fetch(path, opts);
    let data = {};
    try { data = await r.json(); } catch (e) { data = { error: "HTTP " + r.status }; }
    if (!r.ok) throw Object.assign(new Error(data.error || "HTTP " + r.status), { status: r.status });
    return data;
  }

  function fillSelect(name, values, keep) {
    const s = $("filters").elements[name];
    const first = s.options.length && s.options[0].value === "" ? s.options[0] : null;
    s.replaceChildren(...(first ? [first] : []));
    for (const v of values) {
      const [value, label] = Array.isArray(v) ? [v[0], v[1] ? v[0] + " " + v[1] : v[0]] : [v, v];
      const o = el("option", label);
      o.value = value;
      s.appendChild(o);
    }
    if (keep !== null) s.value = keep;
  }

  async function loadQueue(selectId) {
    const p = params();
    const seq = ++S.queueSeq;
    const data = await api("/api/queue?" + p.toString());
    if (seq !== S.queueSeq) return;  // the filters changed while this was on its way
    S.items = data.items;
    S.reasons = data.reasons;
    if (!S.options) {
      S.options = data.options;
      const url = new URLSearchParams(location.search);
      fillSelect("township", data.options.townships, url.get("township") || "");
      fillSelect("unit", data.options.units, url.get("unit") || "");
      fillSelect("cls", data.options.classes, url.get("cls") || "");
      fillSelect("night", data.options.nights, url.get("night") || "");
      fillSelect("status", data.options.statuses, url.get("status") || "verify");
      fillSelect("order", data.options.orders, url.get("order") || "priority");
      if ([...url.keys()].length) return loadQueue(selectId);
    }
    renderReasons();
    renderQueue();
    let i = selectId ? S.items.findIndex((it) => it.case_id === selectId) : 0;
    if (i < 0) i = 0;
    if (S.items.length) await select(i); else { S.idx = -1; S.detail = null; renderDetail(); }
  }

  function renderReasons() {
    const box = $("reasons");
    box.replaceChildren(el("span", "驳回原因 reason: "));
    S.reasons.forEach((r, i) => {
      const b = el("button", (i + 1) + " " + r.zh + " " + r.key);
      b.type = "button";
      b.dataset.reason = r.key;
      b.addEventListener("click", () => verdict("reject", r.key, performance.now()));
      box.appendChild(b);
    });
  }

  function renderQueue() {
    const ol = $("queue");
    ol.replaceChildren();
    S.items.forEach((it, i) => {
      const li = el("li");
      li.dataset.caseId = it.case_id;
      li.appendChild(el("span", it.case_id, "id"));
      li.appendChild(el("span", it.state_zh, "tag"));
      li.appendChild(el("div", (it.unit_name || "—") + " · " + it.score.toFixed(2)));
      if (it.overdue) li.classList.add("overdue");
      if (it.decided) li.classList.add("decided");
      if (i === S.idx) li.classList.add("current");
      li.addEventListener("click", () => select(i));
      ol.appendChild(li);
    });
    const left = S.items.filter((it) => !it.decided).length;
    $("count").textContent = S.items.length + " 条 · 待审 " + left + " left";
  }

  async function select(i) {
    if (i < 0 || i >= S.items.length) return;
    S.idx = i;
    S.rejecting = false;
    $("reasons").hidden = true;
    renderQueue();
    const id = S.items[i].case_id;
    S.detail = null;  // keys wait for this case: a verdict never lands on the previous one
    delete document.body.dataset.caseId;
    const seq = ++S.caseSeq;
    let detail;
    try {
      detail = await api("/api/case/" + encodeURIComponent(id));
    } catch (e) { if (seq === S.caseSeq) say(e.message); return; }
    if (seq !== S.caseSeq) return;  // another case was chosen meanwhile: its answer decides
    S.detail = detail;
    renderDetail();
  }

  function row(table, label, value) {
    const tr = el("tr");
    tr.appendChild(el("th", label));
    tr.appendChild(el("td", value));
    table.appendChild(tr);
  }

  let map = null, layer = null;
  function renderMap(fc) {
    if (!window.L) return;
    if (!map) {
      map = L.map("map", { attributionControl: false, zoomControl: true });
      layer = L.layerGroup().addTo(map);
    }
    layer.clearLayers();
    const style = (f) => ({
      unit: { color: "#546e7a", weight: 1, fillOpacity: 0.05, dashArray: "4 3" },
      neighbour: { color: "#ef6c00", weight: 2, fillOpacity: 0.3 },
      case: { color: "#d50000", weight: 3, fillOpacity: 0.35 },
    })[f.properties.kind];
    const order = { unit: 0, neighbour: 1, case: 2 };
    const feats = fc.features.slice().sort((a, b) => order[a.properties.kind] - order[b.properties.kind]);
    let bounds = null;
    for (const f of feats) {
      const g = L.geoJSON(f, { style });
      const p = f.properties;
      const tip = el("span", p.kind === "unit" ? p.unit_name + " (" + p.unit_code + ")"
        : p.case_id + " " + (p.state_zh || p.state || ""));
      g.bindTooltip(tip);
      g.addTo(layer);
      if (p.kind === "case") bounds = g.getBounds();
    }
    map.invalidateSize();
    if (bounds) map.fitBounds(bounds.pad(4), { maxZoom: 19 });
  }

  function renderDetail() {
    const d = S.detail;
    const fields = $("fields"), hist = $("history").tBodies[0];
    fields.replaceChildren();
    hist.replaceChildren();
    for (const w of ["before", "after"]) $("chip-" + w).removeAttribute("src");
    if (!d) { say("队列为空 nothing to review under these filters", true); return; }
    const c = d.case;
    document.body.dataset.caseId = c.case_id;
    for (const w of ["before", "after"]) {
      if (d.chips[w]) $("chip-" + w).src = "/api/chip/" + encodeURIComponent(c.case_id) + "/" + w;
    }
    row(fields, "案件编号", c.case_id);
    row(fields, "台账", c.ledger_zh);
    row(fields, "状态", c.state_zh + (c.reject_reason_zh ? "（" + c.reject_reason_zh + "）" : ""));
    row(fields, "类别", c.class);
    row(fields, "置信度", typeof c.score === "number" ? c.score.toFixed(2) : c.score);
    row(fields, "面积（㎡）", typeof c.area_m2 === "number" ? c.area_m2.toFixed(1) : c.area_m2);
    row(fields, "所在单元", (c.unit_name || "—") + "（" + (c.unit_code || "") + "）");
    row(fields, "乡镇（街道）", c.township_name);
    row(fields, "区县", c.district_name);
    row(fields, "责任主体", c.responsible_party);
    row(fields, "首次 / 最近发现", c.first_seen + " / " + c.last_seen);
    row(fields, "发现次数", c.times_seen);
    row(fields, "挂牌督办", c.supervised ? "是 " + (c.deadline || "") : "否");
    for (const h of d.history) {
      const tr = el("tr");
      tr.appendChild(el("td", h.recorded_at || h.at));
      tr.appendChild(el("td", h.who));
      tr.appendChild(el("td", h.from_zh + " → " + h.to_zh + (h.reject_reason ? "（" + h.reject_reason + "）" : "")));
      tr.appendChild(el("td", h.note));
      tr.appendChild(el("td", h.source));
      hist.appendChild(tr);
    }
    $("btn-confirm").disabled = !d.can_confirm;
    $("btn-confirm").textContent = "确认 confirm (C)" + (d.confirm_to_zh ? " → " + d.confirm_to_zh : "");
    $("btn-reject").disabled = !d.can_reject;
    renderMap(d.map);
  }

  function notAllowed(what) {  // a key that does nothing says why
    const c = S.detail.case;
    return c.case_id + ": " + c.state_zh + "，不能" + what + " — not from its state " + c.state;
  }

  async function verdict(action, reason, t0) {
    const d = S.detail;
    if (!d) { say("正在加载 still loading the case; press again"); return; }
    const who = whoBox.value.trim();
    if (!who) { say("请先填写审核人 enter the reviewer's name first"); whoBox.focus(); return; }
    const id = d.case.case_id;
    S.rejecting = false;
    $("reasons").hidden = true;
    try {
      const r = await api("/api/case/" + encodeURIComponent(id) + "/verdict", {
        action, reason: reason || "", version: d.version, who, note: $("note").value,
        page: location.pathname + "?" + params().toString(),
      });
      window.bwTimings.push(performance.now() - t0);
      S.detail = null;
      S.undo.push({ case_id: id, version: r.version });
      saveUndo();
      const it = S.items.find((x) => x.case_id === id);
      if (it) { it.decided = true; it.state = r.to_state; it.state_zh = r.to_state_zh; }
      $("note").value = "";
      say(id + ": " + r.from_state + " → " + r.to_state, true);
      next();
    } catch (e) {
      say(e.message);
      if (e.status === 409) await select(S.idx);  // show what changed
    }
  }

  async function undoLast() {
    const last = S.undo.pop();
    saveUndo();
    if (!last) { say("没有可撤回的审核 nothing to undo"); return; }
    try {
      const r = await api("/api/case/" + encodeURIComponent(last.case_id) + "/undo", {
        version: last.version, who: whoBox.value.trim(),
        page: location.pathname + "?" + params().toString(),
      });
      const i = S.items.findIndex((x) => x.case_id === last.case_id);
      if (i >= 0) Object.assign(S.items[i], { decided: false, state: r.to_state, state_zh: r.to_state_zh });
      say(last.case_id + ": 已撤回 undone (" + r.from_state + " → " + r.to_state + ")", true);
      if (i >= 0) await select(i);
    } catch (e) { say(e.message); }
  }

  function next() {
    let i = S.items.findIndex((x, j) => j > S.idx && !x.decided);
    if (i < 0) i = S.items.findIndex((x) => !x.decided);
    if (i < 0) { renderQueue(); say("本队列已审完 queue cleared", true); return; }
    select(i);
  }

  function setMode(mode) {
    S.mode = mode;
    const chips = $("chips");
    chips.className = mode;
    clearInterval(S.blink);
    $("fig-after").querySelector("img").style.clipPath = "";
    if (mode === "blink") {
      S.blink = setInterval(() => chips.classList.toggle("showing-before"), 600);
    } else if (mode === "swipe") {
      swipe();
    }
    for (const b of document.querySelectorAll(".modes button")) b.classList.toggle("on", b.dataset.mode === mode);
  }
  function swipe() {
    const v = $("swipe").value;
    $("fig-after").querySelector("img").style.clipPath = "inset(0 0 0 " + v + "%)";
  }

  $("swipe").addEventListener("input", swipe);
  for (const b of document.querySelectorAll(".modes button")) b.addEventListener("click", () => setMode(b.dataset.mode));
  $("btn-confirm").addEventListener("click", () => verdict("confirm", "", performance.now()));
  $("btn-reject").addEventListener("click", () => { S.rejecting = true; $("reasons").hidden = false; });
  $("btn-skip").addEventListener("click", next);
  $("btn-undo").addEventListener("click", undoLast);
  $("filters").addEventListener("change", () => {
    history.replaceState(null, "", "/?" + params().toString());
    loadQueue();
  });

  document.addEventListener("keydown", (ev) => {
    const t0 = performance.now();
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (ev.key === "Escape") { S.rejecting = false; $("reasons").hidden = true; document.activeElement.blur(); return; }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key.toLowerCase();
    if (S.rejecting && /^[1-9]$/.test(k)) {
      const r = S.reasons[Number(k) - 1];
      if (r) verdict("reject", r.key, t0);
      ev.preventDefault();
      return;
    }
    const confirm = () => {
      if (S.detail && !S.detail.can_confirm) say(notAllowed("确认 confirm"));
      else verdict("confirm", "", t0);
    };
    const reject = () => {
      if (S.detail && !S.detail.can_reject) { say(notAllowed("驳回 reject")); return; }
      if (S.detail) { S.rejecting = true; $("reasons").hidden = false; }
    };
    const acts = {
      c: confirm, y: confirm, x: reject, r: reject,
      s: next, j: next, arrowdown: next,
      k: () => select(S.idx - 1), arrowup: () => select(S.idx - 1),
      u: undoLast,
      v: () => setMode("side"), w: () => setMode("swipe"), b: () => setMode("blink"),
    };
    if (acts[k]) { ev.preventDefault(); acts[k](); }
  });

  loadQueue().catch((e) => say(e.message));
})();
