/* keras-lmiqa photo pages: the `lmiqa score --html` report and the `lmiqa serve --ui` page.
 *
 * Plain ES2020, no build step, no third-party code, no network except the serving
 * page's own REST predict endpoint. The report page carries its photos as JSON in
 * <script id="lmiqa-data">; the serving page (body data-mode="server") fills the same
 * list from the photos a person drops or chooses. A photo is
 *   {p: path or name, s: score in [0, 1] (higher = better), m: MOS, w, h: image size,
 *    t: thumbnail URL, tw, th: thumbnail size, c: [[y0, x0, y1, x1, crop score, weight], ...],
 *    e: error message (then no score)}.
 */
(function () {
  "use strict";

  // viridis (matplotlib's, as `lmiqa explain`): sequential, readable with red/green colour blindness.
  const PALETTE = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e",
                   "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
  const BINS = 20;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  function mix(a, b, t) {
    const ca = parseInt(a.slice(1), 16), cb = parseInt(b.slice(1), 16);
    const channel = (shift) => Math.round(((ca >> shift) & 255) * (1 - t) + ((cb >> shift) & 255) * t);
    return `rgb(${channel(16)}, ${channel(8)}, ${channel(0)})`;
  }

  function colour(value) {
    const v = Math.min(1, Math.max(0, Number.isFinite(value) ? value : 0)) * (PALETTE.length - 1);
    const i = Math.min(PALETTE.length - 2, Math.floor(v));
    return mix(PALETTE[i], PALETTE[i + 1], v - i);
  }

  // Black text on the light (yellow-green) end, white on the dark end: contrast >= 4.5:1 on both.
  const ink = (value) => (value >= 0.62 ? "#000" : "#fff");
  const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : "");
  const baseName = (path) => path.split(/[\\/]/).pop();

  const state = {
    photos: [],      // scored photos
    errors: [],      // {p, e}
    shown: [],       // photos after filter and sort, in grid order
    low: 0, high: 1, order: "worst",
    mosLabel: "MOS",
  };
  let observer = null;

  // ------------------------------------------------------------------ drawing one photo
  const area = (c) => (c[2] - c[0]) * (c[3] - c[1]);

  // The finest windows (the native-scale tiling): they say where; the coarser grids
  // overlap them and would hide the photo.
  function finest(crops) {
    const smallest = Math.min(...crops.map(area));
    return crops.filter((c) => area(c) <= 1.5 * smallest);
  }

  function overlay(photo, labelled) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "overlay");
    svg.setAttribute("viewBox", `0 0 ${photo.w} ${photo.h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    const crops = finest(photo.c || []);
    const heaviest = Math.max(1e-12, ...crops.map((c) => c[5]));
    const size = Math.max(photo.w, photo.h) / 26;
    for (const c of crops) {
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", c[1]);
      rect.setAttribute("y", c[0]);
      rect.setAttribute("width", c[3] - c[1]);
      rect.setAttribute("height", c[2] - c[0]);
      rect.setAttribute("fill", colour(c[4]));
      // Opacity follows the window's importance weight: where the model looked hardest.
      rect.setAttribute("fill-opacity", (0.06 + 0.4 * c[5] / heaviest).toFixed(3));
      rect.setAttribute("stroke", colour(c[4]));
      rect.setAttribute("stroke-width", labelled ? 2 : 1.5);
      rect.setAttribute("vector-effect", "non-scaling-stroke");
      rect.setAttribute("class", "window");
      rect.dataset.score = c[4];
      svg.appendChild(rect);
      if (labelled) {
        const box = document.createElementNS(SVG, "rect");
        box.setAttribute("x", (c[1] + c[3]) / 2 - 1.3 * size);
        box.setAttribute("y", (c[0] + c[2]) / 2 - 0.65 * size);
        box.setAttribute("width", 2.6 * size);
        box.setAttribute("height", 1.3 * size);
        box.setAttribute("rx", size / 4);
        box.setAttribute("fill", colour(c[4]));
        box.setAttribute("class", "label");
        const text = document.createElementNS(SVG, "text");
        text.setAttribute("x", (c[1] + c[3]) / 2);
        text.setAttribute("y", (c[0] + c[2]) / 2);
        text.setAttribute("font-size", size);
        text.setAttribute("fill", ink(c[4]));
        text.textContent = c[4].toFixed(2);
        svg.append(box, text);
      }
    }
    return svg;
  }

  function describe(photo) {
    return `${baseName(photo.p)}: quality ${fixed(photo.s, 4)} (0 to 1, higher is better), ` +
      `${state.mosLabel} ${fixed(photo.m, 4)}`;
  }

  function picture(photo, labelled) {
    const frame = document.createElement("div");
    frame.className = "frame";
    if (photo.t) {
      const img = document.createElement("img");
      img.src = photo.t;
      img.alt = describe(photo);
      img.width = photo.tw;
      img.height = photo.th;
      img.decoding = "async";
      img.loading = "lazy";
      frame.appendChild(img);
      frame.appendChild(overlay(photo, labelled));
    } else {
      frame.classList.add("missing");
      frame.textContent = photo.why || "no preview";
    }
    return frame;
  }

  function card(photo, position) {
    const li = document.createElement("li");
    li.className = "card";
    li.tabIndex = position === 0 ? 0 : -1;  // roving focus: one tab stop for the grid, arrows inside
    li.dataset.position = position;
    li.dataset.path = photo.p;
    li.dataset.score = photo.s;
    li.dataset.mos = photo.m;
    li.setAttribute("aria-label", describe(photo));
    const slot = document.createElement("div");
    slot.className = "slot";
    slot.style.aspectRatio = `${photo.tw || 1} / ${photo.th || 1}`;
    li.appendChild(slot);
    const caption = document.createElement("div");
    caption.className = "caption";
    const badge = document.createElement("span");
    badge.className = "badge score";
    badge.style.background = colour(photo.s);
    badge.style.color = ink(photo.s);
    badge.textContent = fixed(photo.s, 4);
    const mos = document.createElement("span");
    mos.className = "mos";
    mos.textContent = `${state.mosLabel} ${fixed(photo.m, 3)}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = baseName(photo.p);
    name.title = photo.p;
    caption.append(badge, mos, name);
    li.appendChild(caption);
    return li;
  }

  // Thumbnails and their windows are built when a card comes near the viewport: a page of
  // 5,000 photos holds 5,000 light cards, and pictures only for those seen.
  function fill(li) {
    const slot = li.querySelector(".slot");
    if (slot.firstChild) return;
    slot.appendChild(picture(state.shown[Number(li.dataset.position)], false));
  }

  // ------------------------------------------------------------------ the list
  function sorted(photos) {
    const key = {
      worst: (a, b) => a.s - b.s || a.p.localeCompare(b.p),
      best: (a, b) => b.s - a.s || a.p.localeCompare(b.p),
      name: (a, b) => a.p.localeCompare(b.p),
    }[state.order];
    return photos.slice().sort(key);
  }

  function render() {
    state.shown = sorted(state.photos.filter((p) => p.s >= state.low && p.s <= state.high));
    const grid = $("grid");
    if (observer) observer.disconnect();
    grid.replaceChildren(...state.shown.map(card));
    if ("IntersectionObserver" in window) {
      observer = new IntersectionObserver((entries) => {
        for (const entry of entries) {
          if (entry.isIntersecting) {
            fill(entry.target);
            observer.unobserve(entry.target);
          }
        }
      }, { rootMargin: "600px 0px" });
      for (const li of grid.children) observer.observe(li);
    } else {
      for (const li of grid.children) fill(li);
    }
    summary();
    histogram();
    errors();
  }

  function summary() {
    const total = state.photos.length + state.errors.length;
    const parts = [`${total} photo${total === 1 ? "" : "s"}`, `${state.photos.length} scored`];
    if (state.errors.length) parts.push(`${state.errors.length} not scored`);
    const bound = (value) => String(Number(value.toFixed(4)));
    parts.push(`showing ${state.shown.length} with score ${bound(state.low)} to ${bound(state.high)}`);
    $("summary").textContent = parts.join(" · ");
    $("summary").dataset.shown = state.shown.length;
    $("summary").dataset.scored = state.photos.length;
    $("summary").dataset.errors = state.errors.length;
  }

  function histogram() {
    const counts = new Array(BINS).fill(0);
    for (const p of state.photos) counts[Math.min(BINS - 1, Math.max(0, Math.floor(p.s * BINS)))] += 1;
    const most = Math.max(1, ...counts);
    const svg = $("histogram");
    svg.replaceChildren();
    const width = 100 / BINS;
    counts.forEach((count, i) => {
      const low = i / BINS, high = (i + 1) / BINS;
      const bar = document.createElementNS(SVG, "rect");
      const height = count ? Math.max(1.5, 38 * count / most) : 0;
      bar.setAttribute("x", i * width + 0.15);
      bar.setAttribute("y", 40 - height);
      bar.setAttribute("width", width - 0.3);
      bar.setAttribute("height", height);
      bar.setAttribute("fill", colour((low + high) / 2));
      const inside = high > state.low && low < state.high;
      bar.setAttribute("class", inside ? "bar" : "bar outside");
      bar.dataset.count = count;
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${count} photo${count === 1 ? "" : "s"} scored ${low.toFixed(2)} to ${high.toFixed(2)}`;
      bar.appendChild(title);
      // A click on a bar shows that bin alone; a second click shows every score again.
      bar.addEventListener("click", () => {
        const same = state.low === low && state.high === high;
        setRange(same ? 0 : low, same ? 1 : high);
      });
      svg.appendChild(bar);
    });
    $("histogram-caption").textContent =
      `Scores of the ${state.photos.length} scored photos in ${BINS} bins from 0 (worst) to 1 (best); ` +
      `the tallest bin holds ${most === 1 && !state.photos.length ? 0 : most}.`;
  }

  function errors() {
    const list = $("errors");
    list.replaceChildren(...state.errors.map((item) => {
      const li = document.createElement("li");
      const path = document.createElement("code");
      path.textContent = item.p;
      li.append(path, `: ${item.e}`);
      return li;
    }));
    $("errors-section").hidden = state.errors.length === 0;
    $("errors-heading").textContent = `${state.errors.length} photo${state.errors.length === 1 ? "" : "s"} ` +
      "not scored";
  }

  function setRange(low, high) {
    state.low = Math.min(low, high);
    state.high = Math.max(low, high);
    $("low").value = String(Number(state.low.toFixed(4)));
    $("high").value = String(Number(state.high.toFixed(4)));
    render();
  }

  // ------------------------------------------------------------------ keyboard and detail view
  function columns() {
    const cards = $("grid").children;
    if (cards.length < 2) return 1;
    const top = cards[0].offsetTop;
    let count = 1;
    while (count < cards.length && cards[count].offsetTop === top) count += 1;
    return count;
  }

  function focusCard(position) {
    const cards = $("grid").children;
    if (!cards.length) return;
    const target = cards[Math.min(cards.length - 1, Math.max(0, position))];
    for (const li of cards) li.tabIndex = -1;
    target.tabIndex = 0;
    fill(target);
    target.focus();
    target.scrollIntoView({ block: "nearest" });
  }

  function onGridKey(event) {
    const li = event.target.closest(".card");
    if (!li) return;
    const at = Number(li.dataset.position);
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns(),
                    Home: -at, End: $("grid").children.length };
    if (event.key in moves) {
      event.preventDefault();
      focusCard(at + moves[event.key]);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openDetail(at);
    }
  }

  function openDetail(position) {
    const photo = state.shown[position];
    if (!photo) return;
    const dialog = $("detail");
    dialog.dataset.position = position;
    $("detail-title").textContent = baseName(photo.p);
    $("detail-path").textContent = photo.p;
    const worst = (photo.c || []).reduce((a, c) => (a === null || c[4] < a[4] ? c : a), null);
    $("detail-facts").textContent = `quality ${fixed(photo.s, 4)} · ${state.mosLabel} ${fixed(photo.m, 4)} · ` +
      `${(photo.c || []).length} windows (the ${finest(photo.c || []).length} finest drawn)` + (worst ? ` · worst window ${worst[4].toFixed(3)} at x ${Math.round(worst[1])}` +
      `–${Math.round(worst[3])}, y ${Math.round(worst[0])}–${Math.round(worst[2])} px` : "");
    const frame = picture(photo, true);
    $("detail-picture").replaceChildren(frame);
    const img = frame.querySelector("img");
    if (img) {
      // As large as the window allows, in the photo's own proportions.
      const scale = Math.min(720 / photo.w, 0.86 * window.innerWidth / photo.w, 0.64 * window.innerHeight / photo.h);
      img.style.width = `${Math.round(photo.w * scale)}px`;
      img.style.height = `${Math.round(photo.h * scale)}px`;
      img.loading = "eager";
      if (photo.o) {  // the photo itself, where the page is opened beside it; else the thumbnail stays
        const full = new Image();
        full.onload = () => { img.src = full.src; };
        full.src = photo.o;
      }
    }
    if (!dialog.open) dialog.showModal();
  }

  function onDetailKey(event) {
    const dialog = $("detail");
    const at = Number(dialog.dataset.position);
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      const next = at + (event.key === "ArrowRight" ? 1 : -1);
      if (next >= 0 && next < state.shown.length) {
        openDetail(next);
        focusCard(next);
        dialog.focus();
      }
    }
  }

  // ------------------------------------------------------------------ the serving page
  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  function naturalSize(url) {
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
      img.onerror = () => resolve([0, 0]);
      img.src = url;
    });
  }

  async function predict(items) {
    const body = JSON.stringify({ instances: items.map((item) => ({ b64: item.b64 })) });
    let response;
    try {
      response = await fetch(`/v1/models/${encodeURIComponent(document.body.dataset.model)}:predict`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body, credentials: "same-origin",
      });
    } catch (error) {
      return { error: `the server cannot be reached (${error.message})` };
    }
    let answer = {};
    try {
      answer = await response.json();
    } catch (error) {
      answer = { error: `HTTP ${response.status}: not a JSON answer` };
    }
    if (!response.ok) return { error: `HTTP ${response.status}: ${answer.error || response.statusText}`,
                               status: response.status };
    return { predictions: answer.predictions };
  }

  function scored(item, prediction) {
    const windows = prediction.crop_windows || [];
    const crops = [];
    windows.forEach((win, i) => {
      if (win[2] > win[0] && win[3] > win[1]) {  // a request's padding is empty windows
        crops.push([win[0], win[1], win[2], win[3], prediction.crop_scores[i], prediction.crop_weights[i]]);
      }
    });
    return { p: item.p, s: prediction.score, m: prediction.mos, t: item.url, w: item.w, h: item.h,
             tw: item.w, th: item.h, c: crops };
  }

  async function scoreFiles(files) {
    const maxBatch = Number(document.body.dataset.maxBatch) || 8;
    // base64 is 4/3 of the file; the rest of the JSON body is small
    const maxBytes = 0.9 * Number(document.body.dataset.maxRequestBytes);
    const status = $("status");
    const errorsBefore = state.errors.length;
    const items = [];
    for (const file of files) {
      const url = URL.createObjectURL(file);
      const [w, h] = await naturalSize(url);
      items.push({ p: file.name, url, w, h, b64: await readBase64(file) });
    }
    const batches = [];
    let batch = [], bytes = 0;
    for (const item of items) {
      const size = item.b64.length + 16;
      if (batch.length && (batch.length >= maxBatch || bytes + size > maxBytes)) {
        batches.push(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(item);
      bytes += size;
    }
    if (batch.length) batches.push(batch);
    let done = 0;
    for (const group of batches) {
      status.textContent = `scoring ${done + 1}–${done + group.length} of ${items.length}…`;
      const answer = await predict(group);
      let answers = group.map((item, i) => ({ error: answer.error, prediction: answer.predictions?.[i] }));
      if (answer.error && group.length > 1 && answer.status === 400) {
        // One bad photo fails its whole request: score the others one by one to name it.
        answers = [];
        for (const item of group) {
          const alone = await predict([item]);
          answers.push({ error: alone.error, prediction: alone.predictions?.[0] });
        }
      }
      group.forEach((item, i) => {
        const { error, prediction } = answers[i];
        if (error || !prediction) {
          URL.revokeObjectURL(item.url);
          state.errors.push({ p: item.p, e: error || "no prediction in the answer" });
        } else {
          state.photos.push(scored(item, prediction));
        }
      });
      done += group.length;
    }
    const failed = state.errors.length - errorsBefore;
    status.textContent = `scored ${items.length - failed} of ${items.length} photo${items.length === 1 ? "" : "s"}` +
      (failed ? `; ${failed} not scored (listed below)` : "");
    document.body.dataset.pending = "0";
    render();
  }

  function setUpServerPage() {
    const drop = $("drop");
    const input = $("files");
    const take = (files) => {
      if (!files || !files.length) return;
      document.body.dataset.pending = "1";
      scoreFiles(Array.from(files)).catch((error) => {
        $("status").textContent = `failed: ${error.message}`;
        document.body.dataset.pending = "0";
      });
    };
    input.addEventListener("change", () => { take(input.files); input.value = ""; });
    for (const name of ["dragenter", "dragover"]) {
      drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
    }
    for (const name of ["dragleave", "drop"]) {
      drop.addEventListener(name, () => drop.classList.remove("over"));
    }
    drop.addEventListener("drop", (event) => { event.preventDefault(); take(event.dataTransfer.files); });
    drop.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
    });
  }

  // ------------------------------------------------------------------ start
  function start() {
    const data = $("lmiqa-data");
    if (data) {
      const page = JSON.parse(data.textContent);
      state.mosLabel = page.mos_label || "MOS";
      state.photos = page.photos;
      state.errors = page.errors;
    } else {
      state.mosLabel = document.body.dataset.mosLabel || "MOS";
    }
    if (document.body.dataset.mode === "server") setUpServerPage();
    $("low").addEventListener("change", () => setRange(Number($("low").value) || 0, state.high));
    $("high").addEventListener("change", () => setRange(state.low, Number($("high").value)));
    $("order").addEventListener("change", () => { state.order = $("order").value; render(); });
    $("show-windows").addEventListener("change", () => {
      document.body.classList.toggle("no-windows", !$("show-windows").checked);
    });
    $("grid").addEventListener("keydown", onGridKey);
    $("grid").addEventListener("click", (event) => {
      const li = event.target.closest(".card");
      if (li) { focusCard(Number(li.dataset.position)); openDetail(Number(li.dataset.position)); }
    });
    $("detail").addEventListener("keydown", onDetailKey);
    $("detail-close").addEventListener("click", () => $("detail").close());
    render();
    document.body.dataset.ready = String(Math.round(performance.now()));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
