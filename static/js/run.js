// The live timeline of a run: polls the run's JSON every second while it is active, updates
// each step in place, streams the logs of the steps whose log is open, and swaps in the
// server-rendered side panels when something changed. Plain fetch, no framework.
(() => {
  "use strict";
  const timeline = document.getElementById("timeline");
  if (!timeline) return;
  const labels = JSON.parse(document.getElementById("live-labels").textContent);
  const POLL_MS = 1000;
  const TAIL_LINES = 200;
  const PAGE = 500;
  const MAX_DOM_LINES = 5000;
  const ACTIVE = new Set(["pending", "running", "waiting"]);
  const RUN_ACTIVE = new Set(["pending", "running"]);

  let clockOffset = Date.parse(timeline.dataset.serverNow) - Date.now();
  let runActive = timeline.dataset.runActive === "1";
  const runBadge = document.querySelector("[data-run-status]");
  const runElapsed = document.querySelector("[data-run-elapsed]");
  let runStatus = runBadge ? [...runBadge.classList].find((c) => c.startsWith("status-")).slice(7) : "";

  const steps = new Map();
  timeline.querySelectorAll("li.step").forEach((el) => {
    steps.set(Number(el.dataset.stepId), {
      el,
      status: el.dataset.status,
      started: el.dataset.started || null,
      finished: el.dataset.finished || null,
      logUrl: el.dataset.logUrl,
      lastSeq: Number(el.dataset.lastSeq || 0),
      log: { started: false, next: 0, first: 0, busy: false, open: false, userToggled: false,
             drained: false },
    });
  });

  const serverNow = () => Date.now() + clockOffset;

  function formatDuration(ms) {
    let seconds = Math.max(0, Math.floor(ms / 1000));
    if (seconds < 60) return `${seconds}s`;
    let minutes = Math.floor(seconds / 60);
    seconds %= 60;
    if (minutes < 60) return `${minutes}m ${String(seconds).padStart(2, "0")}s`;
    const hours = Math.floor(minutes / 60);
    minutes %= 60;
    return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  }

  function elapsedText(started, finished) {
    if (!started) return "";
    const end = finished ? Date.parse(finished) : serverNow();
    return formatDuration(end - Date.parse(started));
  }

  function tick() {
    steps.forEach((step) => {
      step.el.querySelector(".step-elapsed").textContent = elapsedText(step.started, step.finished);
    });
    if (runElapsed && runElapsed.dataset.started) {
      runElapsed.textContent = elapsedText(runElapsed.dataset.started, runElapsed.dataset.finished || null);
    }
  }

  function setHidden(node, hidden) { if (node) node.hidden = hidden; }

  function applyStep(step, data) {
    const el = step.el;
    const changed = step.status !== data.status;
    if (changed) {
      el.classList.remove(`step-${step.status}`);
      el.classList.add(`step-${data.status}`);
      el.dataset.status = data.status;
      const badge = el.querySelector(".step-status");
      badge.className = `badge step-status status-${data.status}`;
      badge.textContent = labels.step[data.status] || data.status;
      if (!ACTIVE.has(data.status)) step.log.drained = false;
      step.status = data.status;
    }
    step.started = data.started_at;
    step.finished = data.finished_at;
    const wait = el.querySelector(".step-wait");
    wait.querySelector(".text").textContent = data.wait_reason || "";
    setHidden(wait, !(data.status === "waiting" && data.wait_reason));
    const late = el.querySelector(".step-late");
    if (late) {
      const since = data.heartbeat_late_since;
      late.textContent = since ? labels.late.replace("%(time)s", new Date(since).toLocaleTimeString()) : "";
      setHidden(late, !(data.status === "running" && since));
    }
    const error = el.querySelector(".step-error");
    error.textContent = data.error || "";
    setHidden(error, !data.error);
    const attempts = el.querySelector(".step-attempts");
    attempts.textContent = labels.attempt.replace("%(n)s", data.attempts);
    setHidden(attempts, data.attempts < 2);
    // Follow the action: open the log of a step that starts running or breaks, unless the
    // person already opened or closed it themselves.
    if (changed && !step.log.userToggled && (data.status === "running" || data.status === "failed" || data.status === "errored")) {
      openLog(step, true);
    }
    return changed;
  }

  async function refreshLive() {
    try {
      const response = await fetch(timeline.dataset.liveUrl, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      ["cluster-summary", "run-callout", "cluster-panels"].forEach((id) => {
        const fresh = doc.getElementById(id);
        const current = document.getElementById(id);
        if (fresh && current) current.replaceWith(fresh);
      });
    } catch (error) { /* the next change tries again */ }
  }

  async function pollRun() {
    try {
      const response = await fetch(timeline.dataset.runUrl, {
        credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const date = response.headers.get("Date");
        if (date) clockOffset = Date.parse(date) + 500 - Date.now();
        const snapshot = await response.json();
        let changed = false;
        snapshot.steps.forEach((data) => {
          const step = steps.get(data.id);
          if (step && applyStep(step, data)) changed = true;
        });
        if (runBadge && snapshot.status !== runStatus) {
          runBadge.className = `badge run-status status-${snapshot.status}`;
          runBadge.textContent = labels.run[snapshot.status] || snapshot.status;
          changed = true;
        }
        runStatus = snapshot.status;
        if (runElapsed) {
          runElapsed.dataset.started = snapshot.started_at || "";
          runElapsed.dataset.finished = snapshot.finished_at || "";
        }
        runActive = RUN_ACTIVE.has(snapshot.status);
        timeline.dataset.runActive = runActive ? "1" : "0";
        if (changed) refreshLive();
        tick();
      }
    } catch (error) { /* network hiccup: try again on the next tick */ }
    if (runActive) setTimeout(pollRun, POLL_MS);
  }

  // --- logs ------------------------------------------------------------------------------

  function renderLines(lines) {
    const fragment = document.createDocumentFragment();
    lines.forEach((line) => {
      const span = document.createElement("span");
      span.className = `line ${line.stream === "stderr" ? "stderr" : ""}`;
      span.dataset.seq = line.seq;
      span.textContent = `${line.text}\n`;
      fragment.appendChild(span);
    });
    return fragment;
  }

  function showEmpty(pre) {
    if (!pre.querySelector(".line") && !pre.querySelector(".empty-log")) {
      const note = document.createElement("span");
      note.className = "empty-log";
      note.textContent = labels.no_lines;
      pre.appendChild(note);
    }
  }

  async function fetchLog(step) {
    if (step.log.busy) return;
    step.log.busy = true;
    const pre = step.el.querySelector(".log-lines");
    const follow = step.el.querySelector(".log-follow");
    try {
      for (;;) {
        const response = await fetch(`${step.logUrl}?after=${step.log.next}`, {
          credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
        });
        if (!response.ok) break;
        const page = await response.json();
        if (page.lines.length) {
          const empty = pre.querySelector(".empty-log");
          if (empty) empty.remove();
          pre.appendChild(renderLines(page.lines));
          while (pre.childElementCount > MAX_DOM_LINES) pre.firstElementChild.remove();
          if (follow.checked) pre.scrollTop = pre.scrollHeight;
        }
        step.log.next = page.next;
        if (page.lines.length < PAGE) {
          if (!ACTIVE.has(page.status)) step.log.drained = true;
          break;
        }
      }
      showEmpty(pre);
    } catch (error) { /* retried on the next tick */ }
    step.log.busy = false;
  }

  async function loadEarlier(step) {
    const pre = step.el.querySelector(".log-lines");
    const button = step.el.querySelector(".log-earlier");
    const before = step.log.first;
    const after = Math.max(0, before - 1 - PAGE);
    const response = await fetch(`${step.logUrl}?after=${after}`, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    const page = await response.json();
    const lines = page.lines.filter((line) => line.seq < before);
    pre.insertBefore(renderLines(lines), pre.firstChild);
    step.log.first = after + 1;
    button.hidden = after === 0;
  }

  function openLog(step, automatic) {
    const panel = step.el.querySelector(".step-log");
    const toggle = step.el.querySelector(".log-toggle");
    panel.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    step.log.open = true;
    if (!automatic) step.log.userToggled = true;
    if (!step.log.started) {
      step.log.started = true;
      // Tail: start near the end of a long log; earlier lines load on request.
      step.log.next = Math.max(0, step.lastSeq - TAIL_LINES);
      step.log.first = step.log.next + 1;
      step.el.querySelector(".log-earlier").hidden = step.log.next === 0;
    }
    fetchLog(step);
  }

  function closeLog(step) {
    step.el.querySelector(".step-log").hidden = true;
    step.el.querySelector(".log-toggle").setAttribute("aria-expanded", "false");
    step.log.open = false;
    step.log.userToggled = true;
  }

  timeline.addEventListener("click", (event) => {
    const li = event.target.closest("li.step");
    if (!li) return;
    const step = steps.get(Number(li.dataset.stepId));
    if (event.target.closest(".log-toggle")) {
      if (step.log.open) closeLog(step); else openLog(step, false);
    } else if (event.target.closest(".log-expand")) {
      const button = event.target.closest(".log-expand");
      const expanded = li.querySelector(".log-lines").classList.toggle("expanded");
      button.setAttribute("aria-pressed", expanded ? "true" : "false");
    } else if (event.target.closest(".log-earlier")) {
      loadEarlier(step);
    }
  });

  setInterval(() => {
    steps.forEach((step) => {
      if (step.log.open && (ACTIVE.has(step.status) || !step.log.drained)) fetchLog(step);
    });
  }, POLL_MS);

  setInterval(tick, 1000);
  // Open the log of the step that is running now (or that broke) so progress is visible.
  steps.forEach((step) => {
    if (["running", "failed", "errored"].includes(step.status)) openLog(step, true);
  });
  if (runActive) pollRun();
})();
