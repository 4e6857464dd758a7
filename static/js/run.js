// The cluster page's live run, what htmx does not: the server renders the timeline, the
// logs and the side panels (templates/clusters/_timeline.html, polled by htmx); this file
// only ticks the clocks between two polls and looks after the open logs (follow the newest
// line, expand, open the log of a step that starts running or breaks).
(() => {
  "use strict";
  const live = document.getElementById("run-live");
  if (!live) return;
  const MAX_DOM_LINES = 5000;
  let clockOffset = 0;

  function readClock() {
    const version = document.getElementById("run-version");
    if (version) clockOffset = Date.parse(version.dataset.serverNow) - Date.now();
  }

  // The same format as clusters.web.display.format_duration (42s, 3m 05s, 2h 07m), which
  // rendered the text this replaces; the next poll renders it again on the server.
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

  function tick() {
    if (!live.hasAttribute("hx-get")) return; // a finished run: every clock has stopped
    const now = Date.now() + clockOffset;
    document.querySelectorAll(".run-section [data-started]").forEach((clock) => {
      if (clock.dataset.started && !clock.dataset.finished) {
        clock.textContent = formatDuration(now - Date.parse(clock.dataset.started));
      }
    });
  }

  // Open the log of a step the server marks (running now, or broken), unless the person
  // opened or closed that log themselves.
  function followTheAction() {
    live.querySelectorAll("li.step[data-open-log] details.step-log").forEach((log) => {
      if (!log.open && !log.dataset.userToggled && !log.dataset.autoOpened) {
        log.dataset.autoOpened = "1";
        log.open = true;
      }
    });
  }

  // After new lines came in: keep the DOM bounded and stay on the newest line when following.
  function settleLogs() {
    live.querySelectorAll("details.step-log[open]").forEach((log) => {
      const pre = log.querySelector(".log-lines");
      const lines = pre.querySelectorAll(".line");
      if (lines.length > MAX_DOM_LINES) {
        [...lines].slice(0, lines.length - MAX_DOM_LINES).forEach((line) => line.remove());
        const earlier = pre.querySelector(".log-earlier");
        if (earlier) earlier.remove(); // the lines it would load back are gone from view
      }
      const last = lines.length ? lines[lines.length - 1].dataset.seq : "";
      if (last !== pre.dataset.shownSeq) {
        pre.dataset.shownSeq = last;
        if (log.querySelector(".log-follow").checked) pre.scrollTop = pre.scrollHeight;
      }
    });
  }

  // Jump to start, to end or to a search hit: the pane's lines are replaced (htmx), Follow
  // is on only at the end, and once settled the pane scrolls to where the reader asked.
  function jumpRequested(target) {
    const log = target.closest(".step-log");
    if (!log) return;
    const jump = target.closest(".log-jump, .log-hit");
    if (!jump) return;
    const where = jump.classList.contains("log-hit") ? "mark" : jump.dataset.jump;
    log.querySelector(".log-follow").checked = where === "end";
    log.querySelector(".log-lines").dataset.scrollTo = where;
  }

  function scrollRequested() {
    live.querySelectorAll(".log-lines[data-scroll-to]").forEach((pre) => {
      const where = pre.dataset.scrollTo;
      const mark = pre.querySelector(".line-mark");
      if (where === "mark" && !mark) return; // its lines have not come yet
      delete pre.dataset.scrollTo;
      if (where === "start") pre.scrollTop = 0;
      else if (where === "end") pre.scrollTop = pre.scrollHeight;
      else pre.scrollTop = mark.offsetTop - pre.offsetTop - pre.clientHeight / 3;
      pre.focus({ preventScroll: true }); // the keyboard scrolls the log from here
    });
  }

  live.addEventListener("click", (event) => {
    jumpRequested(event.target);
    const summary = event.target.closest("summary.log-toggle");
    if (summary) summary.parentElement.dataset.userToggled = "1";
    const expand = event.target.closest(".log-expand");
    if (expand) {
      const expanded = expand.closest(".step-log").querySelector(".log-lines")
        .classList.toggle("expanded");
      expand.setAttribute("aria-pressed", expanded ? "true" : "false");
    }
  });

  // The search from the keyboard: Down from the box to the first hit, Up and Down between
  // hits (each a button: Enter jumps to its line), Up from the first back to the box.
  live.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const log = event.target.closest(".step-log");
    if (!log) return;
    const hits = [...log.querySelectorAll(".log-hit")];
    const box = log.querySelector(".log-search input");
    let next = null;
    if (event.target === box && event.key === "ArrowDown") next = hits[0];
    else if (event.target.classList.contains("log-hit")) {
      const at = hits.indexOf(event.target) + (event.key === "ArrowDown" ? 1 : -1);
      next = at < 0 ? box : hits[at];
    }
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });

  document.body.addEventListener("htmx:afterSettle", () => {
    readClock();
    followTheAction();
    settleLogs();
    scrollRequested();
    tick();
  });
  readClock();
  setInterval(tick, 1000);
})();
