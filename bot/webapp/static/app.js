// The Mini App: a calendar of events, a timeline of chairs, the chat's reminders and
// settings. It talks only to /app/api/ (docs/webapp.md), every call signed with the
// initData Telegram gave this window. Every word comes from /app/api/session ("strings",
// translated on the server) or from the data; nothing here is in any one language.

const tg = window.Telegram?.WebApp ?? null;
const API = new URL("../api/", import.meta.url);
const root = document.documentElement;
const $ = (id) => document.getElementById(id);

const state = {
  session: null,
  strings: {},
  chatId: null,
  view: "calendar",
  year: 0,
  month: 0, // 1–12
  org: "",
  mode: "grid",
  day: null, // "YYYY-MM-DD" picked in the grid
  calendars: new Map(), // "year|org" → [EventItem]
  chairs: null,
  me: null,
  card: null, // the EventCard or ChairBar shown in the dialog
  scrolledToToday: false,
};

// --- words, dates, elements ---------------------------------------------------------

function t(key, values = {}) {
  const text = state.strings[key] ?? "";
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    name in values ? String(values[name]) : whole,
  );
}

function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name === "style") {
      for (const [property, v] of Object.entries(value)) element.style.setProperty(property, v);
    } else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

const pad = (n) => String(n).padStart(2, "0");
const iso = (y, m, d) => `${y}-${pad(m)}-${pad(d)}`;
const parts = (day) => day.split("-").map(Number);
const daysIn = (y, m) => new Date(Date.UTC(y, m, 0)).getUTCDate();
const dayNumber = (day) => {
  const [y, m, d] = parts(day);
  return Date.UTC(y, m - 1, d) / 86400000;
};
const previousDay = (day) => new Date((dayNumber(day) - 1) * 86400000).toISOString().slice(0, 10);
// Babel's weekday numbering: Monday is 0.
const weekday = (y, m, d) => (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;

// A CLDR date pattern ("d MMM y", "y年M月d日", "LLLL y 'г'.") filled in from the
// locale's names the session sent.
function formatPattern(pattern, y, m, d = 1) {
  return pattern.replace(/'([^']*)'|([A-Za-z])\2*/g, (token, quoted, letter) => {
    if (quoted !== undefined) return quoted === "" ? "'" : quoted;
    const n = token.length;
    switch (letter) {
      case "y":
        return n === 2 ? pad(y % 100) : String(y);
      case "M":
      case "L":
        if (n === 1) return String(m);
        if (n === 2) return pad(m);
        if (n === 3) return t(`month_short_${m}`);
        return t(letter === "L" ? `month_alone_${m}` : `month_${m}`);
      case "d":
        return n === 2 ? pad(d) : String(d);
      case "E":
      case "c":
        return t(n >= 4 ? `weekday_${weekday(y, m, d)}` : `weekday_short_${weekday(y, m, d)}`);
      default:
        return token;
    }
  });
}

const formatDay = (day, key = "date_pattern") => formatPattern(t(key), ...parts(day));

// Like replaceChildren, leaving out what a condition left false or null.
function fill(element, ...children) {
  element.replaceChildren(
    ...children.flat().filter((child) => child !== null && child !== undefined && child !== false),
  );
}

function applyWords() {
  for (const element of document.querySelectorAll("[data-word]")) {
    element.textContent = t(element.dataset.word);
  }
  for (const element of document.querySelectorAll("[data-label]")) {
    element.setAttribute("aria-label", t(element.dataset.label));
    element.title = t(element.dataset.label);
  }
}

// --- Telegram -----------------------------------------------------------------------

const supports = (version) => !tg?.isVersionAtLeast || tg.isVersionAtLeast(version);
const backButton = tg?.BackButton && supports("6.1") ? tg.BackButton : null;

function haptic(kind) {
  if (tg?.HapticFeedback && supports("6.1")) tg.HapticFeedback.notificationOccurred(kind);
}

let themed = [];
function applyTheme() {
  for (const name of themed) root.style.removeProperty(name);
  themed = [];
  for (const [key, value] of Object.entries(tg?.themeParams ?? {})) {
    if (typeof value !== "string") continue;
    const name = `--tg-theme-${key.replaceAll("_", "-")}`;
    root.style.setProperty(name, value);
    themed.push(name);
  }
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  root.dataset.scheme = tg?.colorScheme ?? (dark ? "dark" : "light");
}

function openLink(event) {
  if (!tg?.openLink) return;
  event.preventDefault();
  tg.openLink(event.currentTarget.href);
}

function startChat() {
  // Opened from a group's t.me/<bot>/<app>?startapp=c<chat id> link.
  const found = /^c(-?\d+)$/.exec(tg?.initDataUnsafe?.start_param ?? "");
  return found ? found[1] : new URLSearchParams(location.search).get("chat");
}

// --- the API ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let pending = 0;
function busy(delta) {
  pending += delta;
  $("main").setAttribute("aria-busy", pending > 0 ? "true" : "false");
  document.body.classList.toggle("busy", pending > 0);
}

async function api(path, body) {
  const url = new URL(path, API);
  if (state.chatId) url.searchParams.set("chat", state.chatId);
  const init = { method: "GET", headers: { Authorization: `tma ${tg?.initData ?? ""}` } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  busy(1);
  try {
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      throw new ApiError(0, "network", t("error_network") || "⚠");
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      // Before the session is read there are no strings yet: the server's message
      // (in the reader's language) is shown instead.
      const message =
        response.status === 401
          ? t("error_unauthorized") || data?.message
          : data?.message || t("error_generic");
      throw new ApiError(
        response.status,
        data?.error ?? "error",
        message || `⚠ ${response.status}`,
      );
    }
    return data;
  } finally {
    busy(-1);
  }
}

function reportError(error, retry = null) {
  if (!(error instanceof ApiError)) {
    console.error(error);
    error = new ApiError(0, "error", t("error_generic") || "⚠");
  }
  haptic("error");
  // An open card is modal: the page behind it cannot be read, so the card says it.
  const inCard = $("card").open && $("card-error") !== null;
  const box = inCard ? $("card-error") : $("alert");
  if (inCard) box.textContent = error.message;
  else $("alert-text").textContent = error.message;
  box.hidden = false;
  box.dataset.status = String(error.status);
  if (!inCard) {
    const button = $("alert-retry");
    // Signing in again is the only cure for a 401: retrying would fail the same way.
    button.hidden = retry === null || error.status === 401;
    button.onclick = () => {
      clearError();
      retry();
    };
  }
}

function clearError() {
  $("alert").hidden = true;
  const inCard = $("card-error");
  if (inCard) inCard.hidden = true;
}

let statusTimer = 0;
function say(text) {
  $("status").textContent = text;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => ($("status").textContent = ""), 4000);
}

// --- session and views --------------------------------------------------------------

async function loadSession() {
  const session = await api("session");
  state.session = session;
  state.strings = session.strings;
  root.lang = session.language;
  root.dir = session.direction;
  if (!state.year) {
    const [y, m] = parts(session.today);
    state.year = y;
    state.month = m;
  }
  applyWords();
  $("chat-title").textContent = session.chat.type === "private" ? "" : (session.chat.title ?? "");
  fillCalendarControls();
}

async function boot() {
  clearError();
  try {
    await loadSession();
  } catch (error) {
    reportError(error, boot);
    return;
  }
  $("tabs").hidden = false;
  showView(state.view);
}

function showView(name) {
  state.view = name;
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  if (name === "calendar") loadCalendar();
  else if (name === "chairs") loadChairs();
  else loadMe();
}

function onTabKey(event) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
  if (!step) return;
  const forward = root.dir === "rtl" ? -step : step;
  const next = tabs[(tabs.indexOf(event.currentTarget) + forward + tabs.length) % tabs.length];
  next.focus();
  showView(next.dataset.view);
}

// --- calendar -----------------------------------------------------------------------

function fillCalendarControls() {
  const session = state.session;
  const years = [...new Set([...session.years, state.year])].sort((a, b) => a - b);
  fill($("year-select"), ...years.map((y) => h("option", { value: y, text: String(y) })));
  const orgName = (o) =>
    o.abbreviation && o.abbreviation !== o.name ? `${o.abbreviation} · ${o.name}` : o.name;
  const orgOptions = () =>
    session.organisations.map((o) => h("option", { value: o.key, text: orgName(o) }));
  fill($("org-select"), h("option", { value: "", text: t("all_organisations") }), ...orgOptions());
  $("org-select").value = state.org;
  fill($("follow-org-select"), ...orgOptions());
}

let calendarRequest = 0;
async function loadCalendar() {
  // A month at a time (with the year's events known only to the year): what is shown.
  const key = `${state.year}|${state.month}|${state.org}`;
  const request = ++calendarRequest;
  let events = state.calendars.get(key);
  if (!events) {
    const query = new URLSearchParams({ year: String(state.year), month: String(state.month) });
    if (state.org) query.set("org", state.org);
    try {
      events = (await api(`calendar?${query}`)).events;
    } catch (error) {
      reportError(error, loadCalendar);
      return;
    }
    state.calendars.set(key, events);
  }
  if (request === calendarRequest) renderCalendar(events);
}

function moveMonth(step) {
  let month = state.month + step;
  let year = state.year;
  if (month < 1) [year, month] = [year - 1, 12];
  if (month > 12) [year, month] = [year + 1, 1];
  state.year = year;
  state.month = month;
  state.day = null;
  loadCalendar();
}

function badge(item) {
  return h("span", { class: `badge status-${item.status}`, text: item.status_label });
}

function eventButton(event, { when = true } = {}) {
  return h(
    "button",
    { type: "button", class: `event status-${event.status}`, onclick: () => openEvent(event.key) },
    h("span", { class: "event-title", text: event.title }),
    h(
      "span",
      { class: "event-meta" },
      event.organisation_label && h("span", { class: "org", text: event.organisation_label }),
      when && h("span", { class: "when", text: event.when }),
      badge(event),
      followedMark(event),
    ),
    standingNote(event),
  );
}

// What the day makes of an event whatever its status says ("may already have taken
// place"), as the chat's lists say it; nothing when the dates say it all, or when the
// badge says it already ("dates passed — outcome not recorded").
function standingNote(item) {
  if (!item.standing || item.status === "passed") return null;
  return h("span", { class: "standing-note", text: item.standing });
}

function followedMark(item) {
  if (!item.followed) return null;
  return h(
    "span",
    { class: "bell" },
    h("span", { "aria-hidden": "true", text: "🔔" }),
    h("span", { class: "sr-only", text: t("followed") }),
  );
}

function renderCalendar(events) {
  const { year: y, month: m } = state;
  const first = iso(y, m, 1);
  const last = iso(y, m, daysIn(y, m));
  const touches = (e) => e.start <= last && e.end >= first;
  const dayEvents = events.filter(
    (e) => (e.precision === "day" || e.precision === "time") && touches(e),
  );
  const bands = events.filter((e) => e.precision === "month" && touches(e));
  const sometime = events.filter((e) => e.precision === "year");

  $("month-title").textContent = formatPattern(t("month_pattern"), y, m);
  const years = state.session.years;
  $("month-prev").disabled = y < Math.min(...years) || (y === Math.min(...years) && m === 1);
  $("month-next").disabled = y > Math.max(...years) || (y === Math.max(...years) && m === 12);
  $("year-select").value = String(y);
  for (const button of $("mode-switch").querySelectorAll("[data-mode]")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === state.mode));
  }

  fill(
    $("month-bands"),
    ...bands.map((e) =>
      h(
        "button",
        { type: "button", class: `band status-${e.status}`, onclick: () => openEvent(e.key) },
        h("span", { class: "event-title", text: e.title }),
        h(
          "span",
          { class: "event-meta" },
          e.organisation_label && h("span", { class: "org", text: e.organisation_label }),
          h("span", { class: "when", text: e.when }),
          !e.standing && h("span", { class: "tbd", text: t("dates_not_announced") }),
          badge(e),
          followedMark(e),
        ),
        standingNote(e),
      ),
    ),
  );

  const onDay = (day) => dayEvents.filter((e) => e.start <= day && e.end >= day);
  const grid = $("month-grid");
  grid.hidden = state.mode !== "grid";
  if (state.mode === "grid") {
    const firstWeekday = Number(t("first_weekday") || 0);
    const names = [...Array(7)].map((_, i) => (firstWeekday + i) % 7);
    const cells = names.map((n) =>
      h("span", { class: "weekday", "aria-hidden": "true", text: t(`weekday_short_${n}`) }),
    );
    const lead = (weekday(y, m, 1) - firstWeekday + 7) % 7;
    for (let i = 0; i < lead; i++) cells.push(h("span", { class: "day blank" }));
    for (let d = 1; d <= daysIn(y, m); d++) {
      const day = iso(y, m, d);
      const found = onDay(day);
      const today = day === state.session.today;
      const classes = `day${today ? " today" : ""}${found.length ? " busy" : ""}`;
      if (!found.length) {
        cells.push(h("span", { class: classes, text: String(d) }));
        continue;
      }
      const label = `${formatDay(day, "day_pattern")}: ${t("events_count", { count: found.length })}`;
      cells.push(
        h(
          "button",
          {
            type: "button",
            class: classes,
            "aria-label": label,
            "aria-pressed": String(state.day === day),
            "aria-current": today ? "date" : null,
            onclick: () => {
              state.day = state.day === day ? null : day;
              renderCalendar(events);
            },
          },
          h("span", { class: "number", text: String(d) }),
          h(
            "span",
            { class: "dots", "aria-hidden": "true" },
            found.slice(0, 3).map((e) => h("span", { class: `dot status-${e.status}` })),
          ),
        ),
      );
    }
    grid.replaceChildren(...cells);
  }

  const list = $("month-list");
  if (state.mode === "grid" && state.day) {
    list.replaceChildren(
      h(
        "div",
        { class: "list-head" },
        h("h3", { text: formatDay(state.day, "day_pattern") }),
        h("button", {
          type: "button",
          class: "link",
          text: t("show_month"),
          onclick: () => {
            state.day = null;
            renderCalendar(events);
          },
        }),
      ),
      h(
        "ul",
        { class: "events" },
        onDay(state.day).map((e) => h("li", {}, eventButton(e))),
      ),
    );
  } else if (state.mode === "grid") {
    list.replaceChildren(
      h(
        "ul",
        { class: "events" },
        dayEvents.map((e) => h("li", {}, eventButton(e))),
      ),
    );
  } else {
    // The agenda: each event once, under its first day in this month.
    const groups = new Map();
    for (const e of dayEvents) {
      const day = e.start < first ? first : e.start;
      groups.set(day, [...(groups.get(day) ?? []), e]);
    }
    list.replaceChildren(
      ...[...groups.keys()].sort().map((day) =>
        h(
          "section",
          { class: "agenda-day" },
          h("h3", { text: formatDay(day, "day_pattern") }),
          h(
            "ul",
            { class: "events" },
            groups.get(day).map((e) => h("li", {}, eventButton(e))),
          ),
        ),
      ),
    );
  }
  if (!dayEvents.length && !bands.length) {
    list.replaceChildren(h("p", { class: "empty", text: t("nothing_this_month") }));
  }

  fill(
    $("year-list"),
    ...(sometime.length
      ? [
          h("h3", { text: t("sometime_in", { year: y }) }),
          h(
            "ul",
            { class: "events" },
            sometime.map((e) => h("li", {}, eventButton(e))),
          ),
        ]
      : []),
  );
}

// --- the card (an event or a chairmanship) -------------------------------------------

function openDialog(title) {
  const dialog = $("card");
  $("card-title").textContent = title;
  fill($("card-body"), h("p", { class: "hint", text: t("loading") }));
  if (!dialog.open) dialog.showModal();
  backButton?.show();
}

function closeDialog() {
  if ($("card").open) $("card").close();
}

function onDialogClosed() {
  state.card = null;
  backButton?.hide();
}

function sourcesBlock(sources, checked = null) {
  if (!sources?.length && !checked) return null;
  return h(
    "section",
    { class: "sources" },
    h("h3", { text: t("sources") }),
    h(
      "ul",
      {},
      (sources ?? []).map((source) =>
        h(
          "li",
          {},
          /^https?:\/\//.test(source)
            ? h("a", {
                href: source,
                target: "_blank",
                rel: "noopener noreferrer",
                onclick: openLink,
                text: source,
              })
            : source,
        ),
      ),
    ),
    checked && h("p", { class: "hint", text: t("checked", { date: formatDay(checked) }) }),
  );
}

// A card of the calendar's year: a recurring event at its occurrence in that year.
const cardPath = (key) => `events/${encodeURIComponent(key)}?year=${state.year}`;

async function openEvent(key) {
  openDialog("");
  let card;
  try {
    card = await api(cardPath(key));
  } catch (error) {
    fill($("card-body"), h("p", { id: "card-error", class: "error", role: "alert" }));
    reportError(error);
    return;
  }
  renderEventCard(card);
}

function renderEventCard(card) {
  state.card = card;
  $("card-title").textContent = card.title;
  const canEdit = state.session.chat.can_edit;
  const follow = h("button", {
    type: "button",
    class: card.subscription_id ? "secondary follow" : "follow",
    text: card.subscription_id ? t("unfollow_event") : t("follow_event"),
    disabled: !canEdit,
    onclick: () => toggleFollow(card, follow),
  });
  fill(
    $("card-body"),
    h(
      "p",
      { class: "card-tags" },
      badge(card),
      card.kind_label && h("span", { class: "kind", text: card.kind_label }),
      card.precision === "month" && h("span", { class: "tbd", text: t("dates_not_announced") }),
      card.precision === "year" &&
        h("span", { class: "tbd", text: t("sometime_in", { year: card.start.slice(0, 4) }) }),
    ),
    card.organisation_label && h("p", { class: "org", text: card.organisation_label }),
    h("p", { class: "when", text: card.when }),
    card.place && h("p", { class: "place", text: card.place }),
    card.countdown && h("p", { class: "countdown", text: card.countdown }),
    card.standing && h("p", { class: "standing", text: card.standing }),
    card.note && h("p", { class: "note", text: card.note }),
    sourcesBlock(card.sources, card.checked),
    h(
      "div",
      { class: "card-actions" },
      follow,
      card.followed &&
        !card.subscription_id &&
        h("p", { class: "hint", text: t("followed_through") }),
      !canEdit && h("p", { class: "hint", text: t("read_only") }),
    ),
    h("p", { id: "card-error", class: "error", role: "alert", hidden: true }),
  );
}

async function toggleFollow(card, button) {
  button.disabled = true;
  try {
    if (card.subscription_id) await api("unfollow", { subscription_id: card.subscription_id });
    else await api("follow", { scope: "event", key: card.key });
  } catch (error) {
    reportError(error);
    button.disabled = false;
    return;
  }
  haptic("success");
  forgetFollows();
  try {
    renderEventCard(await api(cardPath(card.key)));
  } catch (error) {
    reportError(error);
  }
  if (state.view === "calendar") loadCalendar();
}

function forgetFollows() {
  state.calendars.clear();
  state.me = null;
}

// --- chairs timeline ----------------------------------------------------------------

const YEAR_WIDTH = 100; // px for a year on the timeline
const LABEL_WIDTH = 76; // --label-width in app.css
const LANE_HEIGHT = 30;
const LANE_OVERLAP = 12; // px: about six weeks

async function loadChairs() {
  if (!state.chairs) {
    try {
      state.chairs = await api("chairs");
    } catch (error) {
      reportError(error, loadChairs);
      return;
    }
  }
  renderChairs(state.chairs);
}

function renderChairs(data) {
  const scale = YEAR_WIDTH / 365.25;
  const origin = dayNumber(data.from);
  const x = (day) => (dayNumber(day) - origin) * scale;
  const width = x(data.to) + scale;
  const [fromYear] = parts(data.from);
  const [toYear] = parts(data.to);

  const ticks = [];
  for (let y = fromYear; y <= toYear; y++) {
    const at = Math.max(0, x(iso(y, 1, 1)));
    ticks.push(
      h("span", { class: "tick", style: { "inset-inline-start": `${at}px` }, text: String(y) }),
    );
  }
  const rows = data.organisations.map((organisation) => {
    const chairs = [...organisation.chairs].sort((a, b) =>
      (a.start ?? "").localeCompare(b.start ?? ""),
    );
    const bars = chairs.map((bar, i) => barSpan(bar, chairs[i + 1], data, x, scale));
    // Chairs that overlap (a projection over a chair whose end is not known) take lanes;
    // a few weeks' overlap of approximate ends stays in one.
    const lanes = [];
    for (const bar of bars) {
      let lane = lanes.findIndex((end) => end <= bar.left + LANE_OVERLAP);
      if (lane < 0) lane = lanes.push(0) - 1;
      lanes[lane] = bar.left + bar.width;
      bar.lane = lane;
    }
    return h(
      "div",
      { class: "row" },
      h(
        "div",
        { class: "row-label", title: organisation.name },
        h("span", { text: organisation.abbreviation || organisation.name }),
      ),
      h(
        "div",
        {
          class: "track",
          style: { width: `${width}px`, height: `${lanes.length * LANE_HEIGHT + 8}px` },
        },
        bars.map((bar) => chairBar(organisation, bar)),
      ),
    );
  });
  const todayAt = LABEL_WIDTH + x(data.today);
  const todayLine = h(
    "div",
    { class: "today-line", style: { "inset-inline-start": `${todayAt}px` }, "aria-hidden": "true" },
    h("span", { text: t("today") }),
  );
  const inner = h(
    "div",
    { class: "timeline-inner", style: { width: `${LABEL_WIDTH + width}px` } },
    h(
      "div",
      { class: "row axis", "aria-hidden": "true" },
      h("div", { class: "row-label" }),
      h("div", { class: "track", style: { width: `${width}px` } }, ticks),
    ),
    rows,
    todayLine,
  );
  const sample = (kind, word) =>
    h(
      "li",
      {},
      h("span", { class: `bar sample ${kind}`, "aria-hidden": "true" }),
      h("span", { text: t(word) }),
    );
  fill(
    $("timeline"),
    data.organisations.length ? inner : h("p", { class: "empty", text: t("no_chairs") }),
  );
  fill(
    $("timeline-legend"),
    sample("current", "current"),
    sample("projected", "projected"),
    sample("open-end", "open_end"),
    sample("approx-end", "approximate"),
  );
  if (!state.scrolledToToday && data.organisations.length) {
    state.scrolledToToday = true;
    todayLine.scrollIntoView({ inline: "center", block: "nearest" });
  }
}

function barSpan(bar, next, data, x, scale) {
  const start = bar.start ?? data.from;
  // An open end runs on to the next chair (a projection, say), or to the timeline's end.
  const end = bar.end ?? (next?.start && next.start > start ? previousDay(next.start) : data.to);
  const left = x(start);
  return { bar, left, width: Math.max(x(end) + scale - left, 6), lane: 0 };
}

function chairBar(organisation, { bar, left, width, lane }) {
  const classes = ["bar"];
  if (bar.projected) classes.push("projected");
  if (bar.open_end || !bar.end) classes.push("open-end");
  if (bar.start_approximate || !bar.start) classes.push("approx-start");
  if (bar.end_approximate) classes.push("approx-end");
  if (bar.current) classes.push("current");
  const label = [bar.country_name, bar.period, bar.projected && t("projected")]
    .filter(Boolean)
    .join(", ");
  return h(
    "button",
    {
      type: "button",
      class: classes.join(" "),
      style: {
        "inset-inline-start": `${left}px`,
        width: `${width}px`,
        top: `${4 + lane * LANE_HEIGHT}px`,
      },
      "aria-label": label,
      title: label,
      onclick: () => openChair(organisation, bar),
    },
    h("span", {
      class: "bar-text",
      text: bar.projected ? `${bar.country} · ${t("projected")}` : bar.country,
    }),
  );
}

function openChair(organisation, bar) {
  openDialog(bar.country_name);
  state.card = bar;
  const approximate = bar.start_approximate || bar.end_approximate;
  fill(
    $("card-body"),
    h(
      "p",
      { class: "card-tags" },
      bar.current && h("span", { class: "badge status-confirmed", text: t("current") }),
      bar.projected && h("span", { class: "badge status-projected", text: t("projected") }),
      approximate && h("span", { class: "tbd", text: t("approximate") }),
      bar.open_end && h("span", { class: "tbd", text: t("open_end") }),
    ),
    h("p", { class: "org", text: organisation.name }),
    h("p", { class: "when", text: bar.period }),
    bar.projected && h("p", { class: "note", text: t("projected_note") }),
    bar.note && h("p", { class: "note", text: bar.note }),
    sourcesBlock(bar.sources),
    h("p", { id: "card-error", class: "error", role: "alert", hidden: true }),
  );
}

// --- my reminders and settings ------------------------------------------------------

async function loadMe() {
  if (!state.me) {
    try {
      state.me = await api("me");
    } catch (error) {
      reportError(error, loadMe);
      return;
    }
  }
  renderMe(state.me);
}

function leadChoices(name, chosen, disabled) {
  return state.session.lead_times.map((lead) =>
    h(
      "label",
      { class: "choice" },
      h("input", {
        type: "checkbox",
        name,
        value: lead.minutes,
        checked: chosen.includes(lead.minutes),
        disabled,
      }),
      h("span", { text: lead.label }),
    ),
  );
}

const checkedMinutes = (container) =>
  [...container.querySelectorAll("input[type=checkbox]:checked")].map((box) => Number(box.value));

function renderMe(me) {
  const chat = me.chat;
  const locked = !chat.can_edit;
  $("paused-note").hidden = !chat.paused;
  $("read-only-note").hidden = !locked;

  fill(
    $("subscriptions"),
    ...(me.subscriptions.length
      ? me.subscriptions.map((sub) => subscriptionItem(sub, locked))
      : [h("li", { class: "empty", text: t("nothing_followed") })]),
  );
  $("follow-all").hidden = me.subscriptions.some((sub) => sub.scope === "all");
  for (const id of ["follow-all", "follow-org", "follow-org-select", "settings-save"])
    $(id).disabled = locked;

  const languages = state.session.languages.map((l) =>
    h("option", { value: l.code, text: l.name }),
  );
  fill($("setting-language"), ...languages);
  $("setting-language").value = chat.language;
  $("setting-timezone").value = chat.timezone;
  $("timezone-label").textContent = chat.timezone_label;
  fill(
    $("setting-digest"),
    ...state.session.digests.map((d) => h("option", { value: d.value, text: d.label })),
  );
  $("setting-digest").value = chat.digest;
  const leads = $("setting-leads");
  fill(
    leads,
    leads.querySelector("legend"),
    ...leadChoices("default-lead", chat.lead_times, locked),
  );
  for (const id of ["setting-language", "setting-timezone", "setting-digest"])
    $(id).disabled = locked;
  if (!$("zones").childElementCount && Intl.supportedValuesOf) {
    fill(
      $("zones"),
      ...Intl.supportedValuesOf("timeZone").map((zone) => h("option", { value: zone })),
    );
  }
}

function subscriptionItem(sub, locked) {
  const editor = h(
    "fieldset",
    { class: "choices" },
    h("legend", { text: t("lead_times") }),
    leadChoices(`lead-${sub.id}`, sub.lead_times, locked),
  );
  const save = h("button", {
    type: "button",
    text: t("save"),
    disabled: locked,
    onclick: () => saveLeadTimes(sub, editor, save),
  });
  return h(
    "li",
    { class: "subscription" },
    h("p", { class: "sub-label", text: sub.label }),
    h("p", { class: "hint", text: `${t("lead_times")}: ${sub.lead_times_label}` }),
    h(
      "div",
      { class: "sub-actions" },
      h("details", {}, h("summary", { text: t("change_lead_times") }), editor, save),
      h("button", {
        type: "button",
        class: "secondary danger",
        text: t("unfollow"),
        "aria-label": `${t("unfollow")}: ${sub.label}`,
        disabled: locked,
        onclick: (event) => unfollow(sub, event.currentTarget),
      }),
    ),
  );
}

async function changeFollows(call, button) {
  button.disabled = true;
  try {
    await call();
  } catch (error) {
    reportError(error);
    button.disabled = false;
    return false;
  }
  haptic("success");
  forgetFollows();
  await loadMe();
  return true;
}

const unfollow = (sub, button) =>
  changeFollows(() => api("unfollow", { subscription_id: sub.id }), button);

async function saveLeadTimes(sub, editor, button) {
  const lead_times = checkedMinutes(editor);
  if (await changeFollows(() => api(`subscriptions/${sub.id}/lead_times`, { lead_times }), button))
    say(t("saved"));
}

async function saveSettings(event) {
  event.preventDefault();
  const chat = state.me.chat;
  const changes = {};
  const language = $("setting-language").value;
  const timezone = $("setting-timezone").value.trim();
  const digest = $("setting-digest").value;
  const leads = checkedMinutes($("setting-leads"));
  if (language !== chat.language) changes.language = language;
  if (timezone !== chat.timezone) changes.timezone = timezone;
  if (digest !== chat.digest) changes.digest = digest;
  if (leads.join() !== chat.lead_times.join()) changes.lead_times = leads;
  if (!Object.keys(changes).length) return;
  const button = $("settings-save");
  button.disabled = true;
  try {
    const answer = await api("settings", changes);
    state.me = { ...state.me, chat: answer.chat };
    if (changes.language || changes.timezone) {
      // Every word, the day "today" and the data's labels change with them.
      state.calendars.clear();
      state.chairs = null;
      state.me = null;
      await loadSession();
    }
    clearError();
    await loadMe();
    say(t("saved"));
  } catch (error) {
    reportError(error);
  } finally {
    button.disabled = !state.session.chat.can_edit;
  }
}

// --- wiring -------------------------------------------------------------------------

function wire() {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
    tab.addEventListener("keydown", onTabKey);
  }
  // In Arabic the row runs right to left: "previous" stays on the start side, its arrow
  // mirrored by the style sheet.
  $("month-prev").addEventListener("click", () => moveMonth(-1));
  $("month-next").addEventListener("click", () => moveMonth(1));
  $("month-today").addEventListener("click", () => {
    [state.year, state.month] = parts(state.session.today);
    state.day = null;
    loadCalendar();
  });
  $("year-select").addEventListener("change", (event) => {
    state.year = Number(event.target.value);
    state.day = null;
    loadCalendar();
  });
  $("org-select").addEventListener("change", (event) => {
    state.org = event.target.value;
    state.day = null;
    loadCalendar();
  });
  for (const button of $("mode-switch").querySelectorAll("[data-mode]")) {
    button.addEventListener("click", () => {
      state.mode = button.dataset.mode;
      loadCalendar();
    });
  }
  $("follow-all").addEventListener("click", (event) =>
    changeFollows(() => api("follow", { scope: "all", key: null }), event.currentTarget),
  );
  $("follow-org").addEventListener("click", (event) =>
    changeFollows(
      () => api("follow", { scope: "organisation", key: $("follow-org-select").value }),
      event.currentTarget,
    ),
  );
  $("settings-form").addEventListener("submit", saveSettings);
  const dialog = $("card");
  $("card-close").addEventListener("click", closeDialog);
  dialog.addEventListener("close", onDialogClosed);
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) closeDialog(); // a tap on the backdrop
  });
  backButton?.onClick(closeDialog);
  tg?.onEvent?.("themeChanged", applyTheme);
}

applyTheme();
wire();
state.chatId = startChat();
tg?.ready();
tg?.expand();
boot();
