// Fermion console: small progressive enhancements. Every page works without this file.
"use strict";

// The notice after a change is shown once: a reload or a bookmark should not repeat it.
if (new URLSearchParams(location.search).has("done")) {
  const url = new URL(location.href);
  url.searchParams.delete("done");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
}

// Ask before destructive or key-changing forms.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

function badge(tone, icon, text) {
  const span = document.createElement("span");
  span.className = "badge " + tone;
  const i = document.createElement("span");
  i.setAttribute("aria-hidden", "true");
  i.textContent = icon;
  span.append(i, " " + text);
  return span;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search));
    return null;
  }
  return response.ok ? response.json() : null;
}

// Device page: keep online state and key health current without a reload, so an approved
// device turns green the moment it reconnects.
const device = document.querySelector("[data-poll-device]");
if (device) {
  const url = device.getAttribute("data-poll-device");
  const shownCandidate = device.getAttribute("data-candidate") || null;
  const tick = async () => {
    try {
      const s = await getJSON(url);
      if (!s) return;
      const online = device.querySelector('[data-live="online"]');
      online.replaceChildren(s.online ? badge("good", "●", "Online") : badge("muted", "○", "Offline"));
      const health = device.querySelector('[data-live="health"]');
      health.replaceChildren(badge(s.health_tone, s.health_icon, s.health_text));
      const key = device.querySelector('[data-live="key"] code');
      if (key) key.textContent = s.key_fingerprint || "none on record";
      // The facts beside the badges come in the same reply, written as the page writes them:
      // a device that turns green shows its new handshake, not the refusal before it.
      for (const [name, value] of Object.entries(s.facts || {})) {
        const fact = device.querySelector(`[data-live="${name}"]`);
        if (fact) fact.textContent = value;
      }
      // A new key presented (or the one shown settled elsewhere): the page's forms are stale.
      if (String(s.candidate_id || "") !== String(shownCandidate || "") && s.candidate_id) {
        window.location.reload();
      }
    } catch (err) {
      // The server may be restarting; try again on the next tick.
    }
  };
  setInterval(tick, 2000);
}

// Fleet page: refresh the counts.
const cards = document.querySelector("[data-poll-counts]");
if (cards) {
  const url = cards.getAttribute("data-poll-counts");
  setInterval(async () => {
    try {
      const s = await getJSON(url);
      if (!s) return;
      for (const [key, n] of Object.entries(s.counts)) {
        const el = cards.querySelector(`[data-count="${key}"]`);
        if (el) el.textContent = n;
      }
      const on = cards.querySelector('[data-count="online"]');
      if (on) on.textContent = s.online;
      const off = cards.querySelector('[data-count="offline"]');
      if (off) off.textContent = s.offline;
    } catch (err) {
      // ignore; next tick
    }
  }, 5000);
}
