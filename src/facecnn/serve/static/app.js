// The facecnn web page: recognize a photo or the webcam, manage the gallery's people and
// their faces one by one, name, merge or dismiss the groups of faces of a `facecnn cluster`
// folder.
// Plain JS against the REST API; paths are relative so the page also works behind a prefix.
"use strict";

const $ = (id) => document.getElementById(id);
const KNOWN = "#16a34a", UNKNOWN = "#dc2626";
const FRAME_MS = 400; // webcam: at most one frame per 0.4 s, and one request in flight

const keyInput = $("key");
keyInput.value = localStorage.getItem("facecnn-key") || "";
keyInput.addEventListener("input", () => {
  localStorage.setItem("facecnn-key", keyInput.value.trim());
});

/** Fetch from the API with the key typed in (a body that is not a form goes as JSON);
 * resolve to the response or reject with the server's `detail` line. */
async function call(method, path, body) {
  const key = keyInput.value.trim();
  const headers = key ? { "x-api-key": key } : {};
  if (body !== undefined && !(body instanceof FormData)) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, body, headers, cache: "no-store" });
  } catch {
    throw new Error("the server cannot be reached");
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    throw new Error(`${response.status}: ${answer.detail || response.statusText}`);
  }
  return response;
}

/** Call the API; resolve to its JSON or reject with the server's `detail` line. */
async function api(method, path, body) {
  return (await call(method, path, body)).json().catch(() => ({}));
}

function say(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

function recognize(blob) {
  const form = new FormData();
  form.append("image", blob, blob.name || "frame.jpg");
  return api("POST", "v1/recognize", form);
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// ---- Recognize: boxes on a canvas, and a table ----

/** Boxes and labels in image pixels, sized in CSS pixels so they stay legible at any scale. */
function drawFaces(canvas, faces) {
  const ctx = canvas.getContext("2d");
  const ratio = canvas.width / (canvas.getBoundingClientRect().width || canvas.width);
  ctx.lineWidth = 3 * ratio;
  ctx.font = `600 ${14 * ratio}px system-ui, sans-serif`;
  ctx.textBaseline = "bottom";
  for (const face of faces) {
    const [x1, y1, x2, y2] = face.box;
    const known = face.name !== "unknown";
    const label = known ? `${face.name} ${face.score.toFixed(2)}` : "unknown";
    const pad = 4 * ratio, height = 20 * ratio;
    const top = y1 >= height ? y1 - height : y2; // label above the box, or below at the edge
    ctx.strokeStyle = ctx.fillStyle = known ? KNOWN : UNKNOWN;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.fillRect(x1 - ctx.lineWidth / 2, top, ctx.measureText(label).width + 2 * pad, height);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, x1 + pad, top + height - pad);
  }
}

function showTable(faces) {
  const body = $("faces").tBodies[0];
  body.replaceChildren(...faces.map((face) => row([
    face.name, face.score.toFixed(2), face.distance === null ? "–" : face.distance.toFixed(3),
    face.box.join(", "),
  ])));
  body.querySelectorAll("tr").forEach((tr, i) => {
    tr.classList.toggle("unknown", faces[i].name === "unknown");
  });
  $("faces").hidden = faces.length === 0;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    td.append(cell);
    tr.append(td);
  }
  return tr;
}

async function recognizePhoto(file) {
  stopCamera();
  const message = $("recognize-message");
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    say(message, `${file.name} is not an image this browser can show`, true);
    return;
  }
  const canvas = $("picture");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.hidden = false;
  $("hint").hidden = true;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  showTable([]);
  say(message, `recognizing ${file.name}…`);
  try {
    const { faces } = await recognize(file);
    drawFaces(canvas, faces);
    showTable(faces);
    say(message, faces.length ? plural(faces.length, "face") : "no face found");
  } catch (error) {
    say(message, error.message, true);
  }
}

$("photo").addEventListener("change", (event) => {
  if (event.target.files.length) recognizePhoto(event.target.files[0]);
  event.target.value = ""; // choosing the same file again recognizes it again
});

const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) recognizePhoto(event.dataTransfer.files[0]);
});

// ---- Webcam: grab a frame, POST it as JPEG, draw the answer over the live video ----

let stream = null;
let session = 0; // bumped on stop, so an old loop never draws over a new one

async function startCamera() {
  const message = $("recognize-message");
  if (!navigator.mediaDevices?.getUserMedia) {
    say(message, "this browser gives the page no camera (it needs https or localhost)", true);
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640 }, audio: false });
  } catch (error) {
    say(message, `no camera: ${error.message || error.name}`, true);
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  $("picture").hidden = $("hint").hidden = $("faces").hidden = true;
  $("live").hidden = $("camera-stop").hidden = false;
  $("camera-start").hidden = true;
  say(message, "camera on");
  watch(++session);
}

async function watch(id) {
  const video = $("video"), overlay = $("overlay"), frame = document.createElement("canvas");
  while (id === session) {
    const started = performance.now();
    frame.width = video.videoWidth;
    frame.height = video.videoHeight;
    frame.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((done) => frame.toBlob(done, "image/jpeg", 0.85));
    try {
      const { faces } = await recognize(blob);
      if (id !== session) return;
      overlay.width = frame.width; // also clears the last frame's boxes
      overlay.height = frame.height;
      drawFaces(overlay, faces);
      $("state").textContent = plural(faces.length, "face");
    } catch (error) {
      if (id !== session) return;
      say($("recognize-message"), error.message, true);
      stopCamera();
      return;
    }
    await new Promise((done) => setTimeout(done, FRAME_MS - (performance.now() - started)));
  }
}

function stopCamera() {
  session++;
  if (!stream) return;
  stream.getTracks().forEach((track) => track.stop());
  stream = null;
  $("video").srcObject = null;
  $("live").hidden = $("camera-stop").hidden = true;
  $("camera-start").hidden = false;
  $("hint").hidden = !$("picture").hidden;
  $("state").textContent = "";
}

$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", () => {
  stopCamera();
  say($("recognize-message"), "camera off");
});

// ---- People: list, enrol, remove ----

async function listPeople() {
  const message = $("people-message");
  try {
    const { people } = await api("GET", "v1/people");
    $("gallery").tBodies[0].replaceChildren(...people.map(({ name, faces }) => {
      const remove = document.createElement("button");
      remove.textContent = "Remove";
      remove.className = "danger";
      remove.addEventListener("click", () => removePerson(name, faces));
      const show = labelled(make("button", { textContent: "Faces" }), `Faces of ${name}`);
      show.addEventListener("click", () => showPerson(name));
      return row([name, String(faces), make("span", { className: "toolbar" }, show, remove)]);
    }));
    if (!people.length) say(message, "the gallery is empty: enrol someone");
    if (shownPerson && !people.some(({ name }) => name === shownPerson)) hidePerson();
  } catch (error) {
    say(message, error.message, true);
  }
}

// A change to who is enrolled calibrates the threshold again: say where "unknown" starts now.
function unknownBeyond(answer) {
  return `; unknown beyond ${answer.threshold.toFixed(4)} (${answer.threshold_source})`;
}

async function removePerson(name, faces) {
  if (!confirm(`Remove ${name} and their ${plural(faces, "face")} from the gallery?`)) return;
  const message = $("people-message");
  try {
    const answer = await api("DELETE", `v1/people/${encodeURIComponent(name)}`);
    say(message, `removed ${answer.name} (${plural(answer.removed, "face")})` +
      unknownBeyond(answer));
  } catch (error) {
    say(message, error.message, true);
  }
  listPeople();
}

$("images").addEventListener("change", (event) => {
  const count = event.target.files.length;
  $("chosen").textContent = count ? plural(count, "photo") : "";
});

$("enrol").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("name").value.trim(), files = $("images").files, message = $("people-message");
  if (!files.length) {
    say(message, "choose one or more photos of the person", true);
    return;
  }
  const form = new FormData();
  for (const file of files) form.append("images", file, file.name);
  say(message, `enrolling ${name}…`);
  try {
    const answer = await api("POST", `v1/people/${encodeURIComponent(name)}`, form);
    const skipped = answer.no_face.length ? `; no face in ${answer.no_face.join(", ")}` : "";
    say(message, `enrolled ${answer.name}: ${plural(answer.added, "face")} added${skipped}` +
      unknownBeyond(answer));
    event.target.reset();
    $("chosen").textContent = "";
  } catch (error) {
    say(message, error.message, true);
  }
  listPeople();
});

// ---- A person's faces: a grid to select from, then remove or move to another person ----

let shownPerson = null;
let thumbnails = []; // object URLs of the grid's thumbnails, released when it is redrawn

async function showPerson(name) {
  shownPerson = name;
  $("person").hidden = false;
  $("person-name").textContent = `Faces of ${name}`;
  say($("person-message"), "");
  let faces;
  try {
    ({ faces } = await api("GET", `v1/people/${encodeURIComponent(name)}/faces`));
  } catch (error) {
    say($("person-message"), error.message, true);
    return;
  }
  thumbnails.forEach((url) => URL.revokeObjectURL(url));
  thumbnails = [];
  $("person-faces").replaceChildren(...faces.map(faceTile));
  facesChanged();
}

function hidePerson() {
  shownPerson = null;
  $("person").hidden = true;
}

function faceTile({ id, source, box, thumbnail }) {
  const photo = source ? source.split(/[\\/]/).pop() : "photo not recorded";
  const pick = make("input", { type: "checkbox", value: String(id) });
  pick.setAttribute("aria-label", `face ${id}`);
  pick.addEventListener("change", facesChanged);
  let picture = make("span", { className: "none", textContent: "no thumbnail" });
  if (thumbnail) {
    picture = make("img", { alt: `face ${id} from ${photo}` });
    call("GET", thumbnail).then((response) => response.blob()).then((blob) => {
      picture.src = URL.createObjectURL(blob); // an <img> itself could not send the key
      thumbnails.push(picture.src);
    }).catch((error) => say($("person-message"), error.message, true));
  }
  const where = box ? ` [${box.join(", ")}]` : "";
  const tile = make("li", {}, make("label", { title: `${source || ""}${where}` },
                                   picture, pick, ` ${photo}`));
  tile.dataset.face = String(id);
  return tile;
}

function chosenFaces() {
  return Array.from($("person-faces").querySelectorAll("input:checked"),
                    (box) => Number(box.value));
}

function facesChanged() {
  const count = chosenFaces().length;
  $("forget").disabled = $("move-button").disabled = count === 0;
  $("faces-selected").textContent = count ? `${count} selected` : "";
}

/** Edit the shown person's selected faces, say how it went, and redraw the grid and list. */
async function faceAction(doing, work, done) {
  const message = $("person-message"), name = shownPerson;
  say(message, doing);
  try {
    const answer = await work(`v1/people/${encodeURIComponent(name)}/faces`, chosenFaces());
    await listPeople();
    if (shownPerson === name) await showPerson(name);
    say($("person").hidden ? $("people-message") : message, done(answer)); // gone: faceless
  } catch (error) {
    say(message, error.message, true);
  }
}

$("forget").addEventListener("click", () => {
  const count = chosenFaces().length;
  if (!confirm(`Remove ${plural(count, "face")} from ${shownPerson}?`)) return;
  faceAction("removing…", (path, faces) => api("POST", `${path}/forget`, { faces }),
    (answer) => `removed ${plural(answer.forgotten.length, "face")} from ${answer.name}`);
});

$("move").addEventListener("submit", (event) => {
  event.preventDefault();
  const to = $("move-to").value.trim();
  faceAction(`moving to ${to}…`, (path, faces) => api("POST", `${path}/move`, { faces, to }),
    (answer) => {
      $("move-to").value = "";
      return `moved ${plural(answer.moved.length, "face")} from ${answer.name} to ${answer.to}`;
    });
});

// ---- Unnamed: the groups of faces of the server's --clusters folder ----

let sheets = []; // the contact sheets' object URLs, released when the list is redrawn

/** An element with these properties and children. */
function make(tag, properties = {}, ...children) {
  const element = Object.assign(document.createElement(tag), properties);
  element.append(...children);
  return element;
}

async function listClusters() {
  const message = $("unnamed-message"), list = $("clusters");
  let clusters;
  try {
    ({ clusters } = await api("GET", "v1/clusters"));
  } catch (error) {
    list.replaceChildren();
    say(message, error.message, true);
    return;
  }
  sheets.forEach((url) => URL.revokeObjectURL(url));
  sheets = [];
  list.replaceChildren(...clusters.map(clusterCard));
  selectionChanged();
  if (!clusters.length) say(message, "no clusters left to name");
}

function clusterCard({ cluster, size, cohesion, sheet }) {
  const path = `v1/clusters/${encodeURIComponent(cluster)}`;
  const image = make("img", { alt: `faces of ${cluster}` });
  call("GET", sheet).then((response) => response.blob()).then((blob) => {
    image.src = URL.createObjectURL(blob); // an <img> itself could not send the key
    sheets.push(image.src);
  }).catch((error) => say($("unnamed-message"), error.message, true));

  const name = labelled(make("input", { required: true, maxLength: 100, placeholder: "name" }),
                        `name for ${cluster}`);
  const naming = make("form", { className: "toolbar" }, name, labelled(
    make("button", { type: "submit", textContent: "Name" }), `Name ${cluster}`));
  naming.addEventListener("submit", (event) => {
    event.preventDefault();
    const person = name.value.trim();
    clusterAction(`naming ${cluster}…`, () => api("POST", `${path}/name`, { name: person }),
      (answer) => `${cluster} is ${answer.name}: ${plural(answer.added, "face")} enrolled`);
  });
  const pick = make("input", { type: "checkbox", value: cluster });
  pick.addEventListener("change", selectionChanged);
  const dismiss = labelled(make("button", { type: "button", className: "danger",
                                            textContent: "Dismiss" }), `Dismiss ${cluster}`);
  dismiss.addEventListener("click", () => clusterAction(`dismissing ${cluster}…`,
    () => api("POST", `${path}/dismiss`), () => `dismissed ${cluster}`));

  const stated = cohesion === null ? "" : `, cohesion ${cohesion.toFixed(2)}`;
  const card = make("li", { className: "card" },
                    make("h2", {}, cluster, make("small", {}, ` ${plural(size, "face")}${stated}`)),
                    image,
                    make("div", { className: "toolbar" }, naming,
                         make("label", { className: "pick" }, pick, "select to merge"), dismiss));
  card.dataset.cluster = cluster;
  return card;
}

/** A control whose accessible name says which cluster it acts on. */
function labelled(element, label) {
  element.setAttribute("aria-label", label);
  return element;
}

function selected() {
  return Array.from($("clusters").querySelectorAll("input[type=checkbox]:checked"),
                    (box) => box.value);
}

function selectionChanged() {
  const count = selected().length;
  $("merge").disabled = count < 2;
  $("selected").textContent = count ? `${count} selected` : "";
}

/** Run one action on the clusters, say how it went, and show the list as it is now. */
async function clusterAction(doing, work, done) {
  const message = $("unnamed-message");
  say(message, doing);
  try {
    say(message, done(await work()));
  } catch (error) {
    say(message, error.message, true);
  }
  listClusters();
}

$("merge").addEventListener("click", () => {
  const clusters = selected();
  clusterAction(`merging ${clusters.join(", ")}…`,
    () => api("POST", "v1/clusters/merge", { clusters }),
    (answer) => `merged ${answer.merged.join(", ")} into ${answer.cluster}`);
});

// ---- Tabs ----

document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((other) => {
    const chosen = other === tab;
    other.setAttribute("aria-selected", String(chosen));
    $(other.dataset.tab).hidden = !chosen;
  });
  if (tab.dataset.tab !== "recognize") stopCamera(); // leaving the tab releases the camera
  if (tab.dataset.tab === "people") {
    say($("people-message"), "");
    listPeople();
  }
  if (tab.dataset.tab === "unnamed") {
    say($("unnamed-message"), "");
    listClusters();
  }
}));
