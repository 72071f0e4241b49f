// The execution page: its log, live from the event stream, grouped by
// attempt, newest at the bottom, with level and text filters; the summary
// (steps, verdict) fetched again after each progress event; retry.
//
// The stream is the API's (GET .../events). EventSource reconnects by
// itself after a drop and sends Last-Event-ID, so the server resumes after
// the last message received: nothing is missing and nothing comes twice.
// window.logView counts what arrived (and any record id seen twice) for the
// browser tests.
"use strict";

(function () {
  const root = document.getElementById("execution");
  if (!root) return;

  const LEVELS = { debug: 10, info: 20, warning: 30, error: 40 };
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const log = document.getElementById("log");
  const state = document.getElementById("stream-state");
  const jump = document.getElementById("jump-latest");
  const count = document.getElementById("record-count");
  const levelFilter = document.getElementById("filter-level");
  const textFilter = document.getElementById("filter-text");
  const downloads = [document.getElementById("download-ndjson"), document.getElementById("download-txt")];
  const eventTypes = root.dataset.eventTypes.split(" ");
  const finalTypes = root.dataset.finalEventTypes.split(" ");

  const view = {
    received: 0, duplicates: 0, opened: 0, ended: false,
    seen: new Set(), latest: null, latestKey: "", following: true,
  };
  window.logView = view;
  let source = null;

  // -- records -------------------------------------------------------------

  // (created_at, id) as one string that sorts like the server's order:
  // the fraction of the second padded to microseconds.
  function sortKey(record) {
    const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/.exec(record.created_at);
    const fraction = match ? (match[2] || "").padEnd(6, "0") : "";
    return (match ? match[1] + "." + fraction : record.created_at) + " " + record.id;
  }

  function attemptGroup(attempt) {
    const key = attempt === null || attempt === undefined ? "" : String(attempt);
    let group = log.querySelector(`section.attempt[data-attempt="${key}"]`);
    if (group) return group.querySelector("ol");
    group = document.createElement("section");
    group.className = "attempt";
    group.dataset.attempt = key;
    const title = document.createElement("h3");
    title.textContent = key ? `Attempt ${key}` : "Without an attempt (POST /logs, web requests)";
    const list = document.createElement("ol");
    list.className = "records";
    group.append(title, list);
    // Attempts in order, the records from elsewhere last.
    const after = Array.from(log.children).find((other) => {
      const value = other.dataset.attempt;
      return key !== "" && (value === "" || Number(value) > Number(key));
    });
    log.insertBefore(group, after || null);
    return list;
  }

  function span(className, text) {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  function recordElement(record, key) {
    const item = document.createElement("li");
    item.className = `record level-${record.level}`;
    item.dataset.logId = record.id;
    item.dataset.level = record.level;
    item.dataset.key = key;
    const where = [record.step ? `[${record.step}]` : "", record.agent_name || ""].filter(Boolean).join(" ");
    const time = record.created_at.replace("T", " ").replace(/(\.\d{3})\d*/, "$1").replace("+00:00", "");
    item.append(span("time", time), span("level", record.level.toUpperCase()),
                span("category", record.category), span("where", where), span("message", record.message));
    if (record.duration_ms !== null && record.duration_ms !== undefined) {
      item.append(span("duration", `${record.duration_ms.toFixed(1)} ms`));
    }
    if (record.details !== null && record.details !== undefined) {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = "details";
      const body = document.createElement("pre");
      body.textContent = JSON.stringify(record.details, null, 2);
      details.append(summary, body);
      item.append(details);
    }
    item.hidden = !passes(item);
    return item;
  }

  function addRecord(record) {
    view.received += 1;
    if (view.seen.has(record.id)) {
      view.duplicates += 1;
      return;
    }
    view.seen.add(record.id);
    const key = sortKey(record);
    const list = attemptGroup(record.attempt);
    const item = recordElement(record, key);
    // Records land late now and then: walk back to the record's place.
    let next = null;
    for (let other = list.lastElementChild; other && other.dataset.key > key; other = other.previousElementSibling) {
      next = other;
    }
    list.insertBefore(item, next);
    if (key > view.latestKey) {
      view.latestKey = key;
      view.latest = item;
    }
    count.textContent = `${view.seen.size} record${view.seen.size === 1 ? "" : "s"}`;
  }

  // -- following the newest record ------------------------------------------

  // Following: the newest record (or the end of the log) is in sight.
  function inSight() {
    if (log.scrollHeight - log.scrollTop - log.clientHeight < 24) return true;
    if (!view.latest || view.latest.hidden) return false;
    const box = log.getBoundingClientRect();
    const item = view.latest.getBoundingClientRect();
    return item.top >= box.top && item.bottom <= box.bottom + 1;
  }

  // Scrolls the log only, never the page around it.
  function showLatest() {
    const item = view.latest && !view.latest.hidden ? view.latest : null;
    log.scrollTop = item ? item.offsetTop + item.offsetHeight - log.clientHeight + 4 : log.scrollHeight;
  }

  function afterRecords() {
    if (view.following) {
      showLatest();
    }
    jump.hidden = view.following;
  }

  log.addEventListener("scroll", () => {
    view.following = inSight();
    jump.hidden = view.following;
  });

  jump.addEventListener("click", () => {
    view.following = true;
    showLatest();
    jump.hidden = true;
  });

  // -- filters ----------------------------------------------------------------

  function passes(item) {
    const minimum = LEVELS[levelFilter.value] || 0;
    const text = textFilter.value.trim().toLowerCase();
    const message = item.querySelector(".message").textContent.toLowerCase();
    return (LEVELS[item.dataset.level] || 0) >= minimum && (!text || message.includes(text));
  }

  function applyFilters() {
    for (const item of log.querySelectorAll("li.record")) {
      item.hidden = !passes(item);
    }
    const query = new URLSearchParams();
    if (levelFilter.value !== "debug") query.set("level", levelFilter.value);
    if (textFilter.value.trim()) query.set("q", textFilter.value.trim());
    const suffix = query.toString() ? `?${query}` : "";
    for (const link of downloads) {
      link.href = link.href.split("?")[0] + suffix;
    }
    history.replaceState(null, "", location.pathname + suffix);
    afterRecords();
  }

  levelFilter.addEventListener("change", applyFilters);
  textFilter.addEventListener("input", applyFilters);
  // Enter in the text field filters as typing does; it does not reload the
  // page (which would restart the stream).
  document.getElementById("log-filters").addEventListener("submit", (event) => event.preventDefault());

  // -- the summary --------------------------------------------------------

  const summary = document.getElementById("summary");
  let refreshing = null;
  let refreshAgain = false;
  let lastSummary = null;

  function refreshSummary() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = fetch(root.dataset.summaryUrl, { credentials: "same-origin" })
      .then((response) => {
        if (response.redirected) {
          location.assign(response.url); // the session ended: to the sign-in page
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then((html) => {
        // Replaced only when it changed, so that what a person is about to
        // click (retry) is not swapped under the pointer for nothing.
        if (html !== null && html !== lastSummary) {
          summary.innerHTML = html;
          lastSummary = html;
        }
      })
      .catch(() => {})
      .finally(() => {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          refreshSummary();
        }
      });
    return refreshing;
  }

  // Once the execution ended, its last records may still be on their way:
  // the summary (and its verdict) is fetched again until it says it is
  // settled.
  // Once the stream ended: the verdict until it settles, and the stored
  // log whenever it holds more than the page (a record that landed later
  // than the stream looked, or behind the position it resumed from).
  function refreshUntilSettled(tries) {
    refreshSummary().then(() => {
      const verdict = summary.querySelector("[data-settled]");
      const stored = verdict ? Number(verdict.dataset.stored) : 0;
      const more = stored > view.seen.size ? addStoredRecords() : Promise.resolve();
      more.then(() => {
        if (tries > 0 && (!verdict || verdict.dataset.settled !== "true" || stored > view.seen.size)) {
          setTimeout(() => refreshUntilSettled(tries - 1), 1000);
        }
      });
    });
  }

  // Adds the stored records the page does not show yet, a page of the
  // listing at a time.
  function addStoredRecords(after) {
    const url = new URL(root.dataset.logsUrl, location.href);
    url.searchParams.set("limit", "1000");
    if (after) url.searchParams.set("after", after);
    return fetch(url, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((page) => {
        if (!page) return null;
        const missing = page.items.filter((record) => !view.seen.has(record.id));
        for (const record of missing) addRecord(record);
        if (missing.length) afterRecords();
        return page.next ? addStoredRecords(page.next) : null;
      });
  }

  summary.addEventListener("click", (event) => {
    const button = event.target.closest("#retry");
    if (!button) return;
    button.disabled = true;
    fetch(button.dataset.retryUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf },
    }).then((response) => {
      if (response.ok) {
        restart();
        return;
      }
      return response.json().then((problem) => {
        document.getElementById("retry-error").textContent = problem.detail || problem.title;
        button.disabled = false;
      });
    });
  });

  // -- the stream ---------------------------------------------------------

  function setState(text, key) {
    state.textContent = text;
    state.dataset.state = key || text;
  }

  // The server sends an execution's final event last and then ends the
  // stream; a final event in the middle (a run that failed, then a resume)
  // is followed by more. So the stream is over when it ends right after a
  // final event; any other end is a drop, and EventSource reconnects.
  //
  // EventSource gives up for good when the server refuses a connection
  // (503 or 429: too many streams, with Retry-After; or a restart that
  // answers with an error): then a new one is opened after a while, told
  // where to resume in the URL (a new EventSource cannot send
  // Last-Event-ID), waiting longer after each refusal.
  let lastEventId = "";
  let refusals = 0;
  let reopenTimer = null;

  function streamUrl() {
    const url = new URL(root.dataset.eventsUrl, location.href);
    if (lastEventId) url.searchParams.set("last_event_id", lastEventId);
    return url.toString();
  }

  function open() {
    view.ended = false;
    let lastWasFinal = false;
    const current = new EventSource(streamUrl());
    source = current;
    current.onopen = () => {
      view.opened += 1;
      refusals = 0;
      setState("live");
    };
    current.onerror = () => {
      if (lastWasFinal) {
        current.close();
        view.ended = true;
        setState("ended");
        refreshUntilSettled(30);
        return;
      }
      if (current.readyState !== EventSource.CLOSED) {
        setState("reconnecting");
        return;
      }
      refusals += 1;
      const seconds = Math.min(30, 2 ** Math.min(refusals, 5));
      setState(`refused: trying again in ${seconds} s`, "refused");
      reopenTimer = setTimeout(() => {
        reopenTimer = null;
        if (source === current) open();
      }, seconds * 1000);
    };
    current.addEventListener("log", (event) => {
      lastWasFinal = false;
      lastEventId = event.lastEventId || lastEventId;
      addRecord(JSON.parse(event.data));
      afterRecords();
    });
    for (const type of eventTypes) {
      current.addEventListener(type, (event) => {
        lastWasFinal = finalTypes.includes(type);
        lastEventId = event.lastEventId || lastEventId;
        refreshSummary();
      });
    }
  }

  // After a retry, the execution runs again: read its log from the start.
  function restart() {
    if (source) source.close();
    if (reopenTimer) clearTimeout(reopenTimer);
    reopenTimer = null;
    lastEventId = "";
    log.replaceChildren();
    view.seen.clear();
    view.latest = null;
    view.latestKey = "";
    refreshSummary();
    open();
  }

  open();
})();
