/* django-gptimage Generate widget: the panel under an image field.
 *
 * Markup: django_gptimage/widgets/generate_image.html ([data-gptimage-widget] with the signed
 * token and the endpoint URLs as data attributes). Uses options.js (the pickers, from the
 * server-rendered matrix) and status.js (polling with backoff). Every widget is independent:
 * several on one page (inlines) each keep their own candidates and pick.
 *
 * What the editor picks is written to the hidden <name>__gptimage_pick input of the page's
 * form; nothing reaches the field until that form is saved.
 * API: window.gptimage.initWidget(root); widgets present at DOMContentLoaded and inline rows
 * the admin adds (formset:added) are initialised automatically.
 */
(function () {
  "use strict";
  var ns = (window.gptimage = window.gptimage || {});

  var STEP_BUTTONS = {
    retry: "Try again",
    regenerate: "Generate again",
    smaller_tier: "Use a smaller resolution",
    rephrase: "Edit the prompt",
    change_settings: "Change the settings",
  };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function csrfToken(root) {
    var form = root.closest("form");
    var input = (form && form.querySelector('[name="csrfmiddlewaretoken"]')) || document.querySelector('[name="csrfmiddlewaretoken"]');
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function Widget(root) {
    this.root = root;
    this.data = root.dataset;
    this.body = root.querySelector(".gptimage-w-body");
    this.pickInput = root.querySelector("[data-gptimage-pick]");
    // From the inputs' names, which the admin rewrites in a cloned inline row ("__prefix__").
    this.name = this.pickInput.name.replace(/__gptimage_pick$/, "");
    this.prefix = this.name + "-gptimage-";
    if (this.body) this.body.setAttribute("data-gptimage-prefix", this.prefix);
    this.panel = root.querySelector("[data-gptimage-panel]");
    this.live = root.querySelector("[data-gptimage-live]");
    this.errorsEl = root.querySelector("[data-gptimage-errors]");
    this.candidatesEl = root.querySelector("[data-gptimage-candidates]");
    this.historyEl = root.querySelector("[data-gptimage-history]");
    this.madeInput = root.querySelector("[data-gptimage-made]");
    this.pickedNote = root.querySelector("[data-gptimage-picked]");
    this.fileInput = root.querySelector('.gptimage-widget-input input[type="file"]');
    this.generateButton = root.querySelector('[data-gptimage-action="generate"]');
    this.renditions = JSON.parse(this.data.gptimageRenditions || "[]");
    this.watches = {};
    this.cards = {};
    this.promptTouched = false;
    this.prefilled = false;
    var matrixScript = root.querySelector('script[type="application/json"]');
    if (matrixScript && this.body) {
      // An inline row cloned from the empty form: point the picker at this row's own matrix.
      if (!matrixScript.id || document.getElementById(matrixScript.id) !== matrixScript) {
        matrixScript.id = "gptimage-matrix-" + Math.random().toString(36).slice(2);
      }
      this.body.setAttribute("data-gptimage-options", matrixScript.id);
      this.picker = ns.initOptionPicker(this.body);
    }
    this.bind();
  }

  Widget.prototype.bind = function () {
    var self = this;
    this.root.addEventListener("click", function (event) {
      var button = event.target.closest("[data-gptimage-action]");
      if (!button || !self.root.contains(button)) return;
      var action = button.getAttribute("data-gptimage-action");
      if (action === "generate") self.generate();
      else if (action === "fill-prompt") self.fillPrompt(true);
      else if (action === "history") self.toggleHistory(button);
      else if (action === "pick") self.pick(button.getAttribute("data-image"), button);
      else if (action === "step") self.step(button.getAttribute("data-step"));
      else if (action === "edit") self.edit(button.gptimageImage);
      else if (action === "stop-editing") self.edit(null);
      else if (action === "preview") self.preview(button);
    });
    var prompt = this.input("prompt");
    if (prompt) {
      prompt.addEventListener("input", function () { self.promptTouched = true; });
    }
    if (this.panel) {
      this.panel.addEventListener("toggle", function () {
        if (self.panel.open && self.data.gptimageAddForm === "1" && !self.prefilled) self.fillPrompt(false);
      });
    }
    if (this.fileInput) {
      this.fileInput.addEventListener("change", function () {
        if (self.fileInput.files && self.fileInput.files.length && self.pickInput.value) {
          self.pick(null);
          self.say("The uploaded file will be saved instead of the generated candidate.");
        }
      });
    }
  };

  Widget.prototype.input = function (name) {
    return this.body ? this.body.querySelector('[name="' + this.prefix + name + '"]') : null;
  };

  Widget.prototype.say = function (text, kind) {
    this.live.textContent = "";
    this.live.className = "gptimage-w-status" + (kind ? " gptimage-w-" + kind : "");
    if (text) this.live.appendChild(el("p", {}, text));
    return this.live;
  };

  Widget.prototype.showErrors = function (message, errors) {
    var self = this;
    Array.prototype.forEach.call(this.root.querySelectorAll(".gptimage-w-field-error"), function (node) { node.remove(); });
    this.errorsEl.textContent = "";
    var general = [];
    Object.keys(errors || {}).forEach(function (field) {
      var short = field.indexOf(".") !== -1 ? field.split(".").pop() : field;
      var holder = self.body.querySelector('[data-gptimage-error-for="' + short + '"]');
      (errors[field] || []).forEach(function (text) {
        if (holder) holder.appendChild(el("p", { className: "gptimage-w-error gptimage-w-field-error" }, text));
        else general.push(text);
      });
    });
    if (message) general.unshift(message);
    general.forEach(function (text) { self.errorsEl.appendChild(el("li", {}, text)); });
    this.errorsEl.hidden = general.length === 0;
  };

  /* The panel's values, without its prefix, as the endpoint's form data. */
  Widget.prototype.formData = function () {
    var data = new FormData();
    var prefix = this.prefix;
    Array.prototype.forEach.call(this.body.querySelectorAll("[name]"), function (input) {
      if (input.name.indexOf(prefix) !== 0) return;
      var name = input.name.slice(prefix.length);
      if (input.type === "file") {
        Array.prototype.forEach.call(input.files || [], function (file) { data.append(name, file); });
      } else if ((input.type === "radio" || input.type === "checkbox") && !input.checked) {
        return;
      } else {
        data.append(name, input.value);
      }
    });
    data.append("token", this.data.gptimageToken);
    if (this.parentImage) {
      data.append("parent_image", String(this.parentImage.id));
      return data;
    }
    var mode = data.get("mode");
    var useCurrent = this.root.querySelector("[data-gptimage-use-current]");
    if (mode === "image-to-image" && useCurrent && useCurrent.checked && !data.getAll("images").length) {
      if (this.fileInput && this.fileInput.files && this.fileInput.files.length) data.append("images", this.fileInput.files[0]);
      else data.append("use_current", "1");
    }
    return data;
  };

  /* The page form's current values (an add form's title, ...), for the prompt template. */
  Widget.prototype.formValues = function () {
    var form = this.root.closest("form");
    var values = {};
    if (!form) return values;
    var name = this.name;
    var field = this.data.gptimageField;
    var formPrefix = name.slice(0, name.length - field.length);
    Array.prototype.forEach.call(form.elements, function (input) {
      if (!input.name || input.type === "file" || input.name.indexOf("__gptimage") !== -1) return;
      if (input.name.indexOf(formPrefix) !== 0) return;
      if ((input.type === "checkbox" || input.type === "radio") && !input.checked) return;
      var key = input.name.slice(formPrefix.length);
      if (!(key in values)) values[key] = input.value;
    });
    return values;
  };

  Widget.prototype.post = function (url, data) {
    return fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(this.root), Accept: "application/json" },
    }).then(function (response) {
      return response.json().then(
        function (body) { return { status: response.status, body: body, headers: response.headers }; },
        function () { return { status: response.status, body: {}, headers: response.headers }; }
      );
    });
  };

  Widget.prototype.fillPrompt = function (explicit) {
    var self = this;
    var prompt = this.input("prompt");
    if (!prompt || (!explicit && (this.promptTouched || this.data.gptimageHasTemplate !== "1"))) return;
    this.prefilled = true;
    var data = new FormData();
    data.append("token", this.data.gptimageToken);
    data.append("values", JSON.stringify(this.formValues()));
    this.post(this.data.gptimagePromptUrl, data).then(function (answer) {
      if (answer.status === 200) {
        if (explicit || !self.promptTouched) {
          prompt.value = answer.body.prompt;
          if (self.picker) self.picker.refresh();
        }
      } else {
        self.showErrors(answer.body.message, answer.body.errors);
      }
    }, function () {
      self.say("Could not reach the site to fill in the prompt.", "error");
    });
  };

  Widget.prototype.generate = function () {
    var self = this;
    var button = this.generateButton;
    button.disabled = true;
    this.showErrors("", {});
    this.say("Sending…");
    this.post(this.data.gptimageGenerateUrl, this.formData()).then(
      function (answer) {
        button.disabled = false;
        var body = answer.body || {};
        if (answer.status === 202) {
          self.say("");
          self.edit(null);
          (body.generations || []).forEach(function (g) { self.follow(g, body); });
          return;
        }
        if (answer.status === 429) {
          self.say(body.message || "Too many requests; wait a minute.", "error");
          return;
        }
        if (answer.status === 400) {
          self.say("");
          self.showErrors(body.message, body.errors);
          return;
        }
        if (answer.status === 401 || answer.status === 403) {
          self.say(body.message || "You may not generate images here (HTTP " + answer.status + ").", "error");
          return;
        }
        self.say(body.message || "The site could not start the generation (HTTP " + answer.status + "); try again.", "error");
      },
      function () {
        button.disabled = false;
        self.say("Could not reach the site: check the connection and try again. Nothing was sent.", "error");
      }
    );
  };

  Widget.prototype.remember = function (id) {
    var ids = this.madeInput.value ? this.madeInput.value.split(",") : [];
    if (ids.indexOf(id) === -1) ids.push(id);
    this.madeInput.value = ids.join(",");
  };

  /* A card for one generation: its state line, then its candidates. */
  Widget.prototype.card = function (id) {
    if (this.cards[id]) return this.cards[id];
    var card = el("div", { className: "gptimage-w-card", "data-generation": id, role: "listitem" });
    card.appendChild(el("p", { className: "gptimage-w-line", "data-role": "line", "aria-live": "polite" }));
    card.appendChild(el("p", { className: "gptimage-w-note", "data-role": "note", "aria-live": "polite", hidden: "" }));
    card.appendChild(el("p", { className: "gptimage-w-quiet gptimage-w-detail", "data-role": "detail", hidden: "" }));
    card.appendChild(el("div", { className: "gptimage-w-steps", "data-role": "steps" }));
    var preview = el("img", { className: "gptimage-w-preview", alt: "Partial preview", hidden: "" });
    preview.setAttribute("data-role", "preview");
    card.appendChild(preview);
    card.appendChild(el("div", { className: "gptimage-w-thumbs", "data-role": "thumbs" }));
    this.candidatesEl.insertBefore(card, this.candidatesEl.firstChild);
    this.cards[id] = card;
    return card;
  };

  Widget.prototype.follow = function (generation, context) {
    var self = this;
    var id = generation.id;
    this.remember(id);
    var card = this.card(id);
    var noWorker = context && context.workers_listening === false;
    var jobTimeout = (context && context.job_timeout) || parseInt(this.data.gptimageJobTimeout, 10) || 0;
    if (generation.status) this.render(card, generation.status, { noWorker: noWorker, jobTimeout: jobTimeout });
    if (this.watches[id]) this.watches[id].stop();
    this.watches[id] = ns.pollStatus(generation.status_url, {
      onUpdate: function (s) { self.render(card, s, { noWorker: noWorker, jobTimeout: jobTimeout }); },
      onFinal: function (s) { self.final(card, s); },
      onConnection: function (state) {
        card.classList.toggle("gptimage-w-reconnecting", state === "reconnecting");
        self.note(card, state === "reconnecting" ? "Connection lost, reconnecting…" : "", "reconnecting");
      },
      onRefused: function (code, message) {
        self.note(card, message || "This generation cannot be followed (HTTP " + code + ").", "error");
      },
    });
  };

  Widget.prototype.note = function (card, text, kind) {
    var note = card.querySelector('[data-role="note"]');
    if (!text) {
      if (!kind || note.getAttribute("data-kind") === kind) {
        note.hidden = true;
        note.textContent = "";
      }
      return;
    }
    note.textContent = text;
    note.setAttribute("data-kind", kind || "");
    note.hidden = false;
  };

  Widget.prototype.render = function (card, s, context) {
    card.setAttribute("data-status", s.status);
    var line = card.querySelector('[data-role="line"]');
    var text = s.line;
    if (!s.is_final && s.attempt) text += " · attempt " + s.attempt + " / " + s.max_attempts;
    if (!s.is_final) text += " · " + s.elapsed_display;
    line.textContent = text;
    var kind = "";
    var note = "";
    if (s.status === "queued" && context.noWorker && !s.next_attempt_at) {
      kind = "no-worker";
      note = "No worker is taking jobs; the generation will start when one does.";
    } else if (s.status === "running" && context.jobTimeout && s.elapsed > context.jobTimeout) {
      kind = "timeout";
      note =
        "This has run longer than the server's job timeout (" + context.jobTimeout +
        " s): the worker has probably stopped. It will be marked as abandoned and can then be retried.";
    }
    if (kind) {
      this.note(card, note, kind);
    } else {
      this.note(card, "", "no-worker");
      this.note(card, "", "timeout");
    }
    var preview = card.querySelector('[data-role="preview"]');
    if (s.preview_url && !s.is_final) {
      if (preview.getAttribute("src") !== s.preview_url) preview.src = s.preview_url;
      preview.hidden = false;
    } else {
      preview.hidden = true;
    }
    this.thumbs(card, s);
  };

  Widget.prototype.thumbs = function (card, s) {
    var holder = card.querySelector('[data-role="thumbs"]');
    var self = this;
    (s.images || []).forEach(function (image) {
      if (holder.querySelector('[data-image="' + image.id + '"]')) return;
      var item = el("div", { className: "gptimage-w-candidate" });
      var label = "Use candidate " + (image.index + 1) + " (" + image.width + " × " + image.height + ")";
      var button = el("button", {
        type: "button",
        className: "gptimage-w-thumb",
        "data-gptimage-action": "pick",
        "data-image": String(image.id),
        "aria-pressed": String(self.pickInput.value === String(image.id)),
        "aria-label": label,
        title: image.alt_text || label,
      });
      var img = el("img", { src: image.url, alt: image.alt_text || "", loading: "lazy" });
      button.appendChild(img);
      button.appendChild(el("span", { className: "gptimage-w-thumb-label" }, image.width + " × " + image.height));
      button.gptimageImage = image;
      item.appendChild(button);
      if (image.alt_text) item.appendChild(el("p", { className: "gptimage-w-quiet gptimage-w-alt" }, "Alt text: " + image.alt_text));
      var tools = el("div", { className: "gptimage-w-tools" });
      var edit = el("button", { type: "button", className: "button gptimage-w-small", "data-gptimage-action": "edit", "data-image": String(image.id) }, "Edit this image");
      edit.gptimageImage = image;
      tools.appendChild(edit);
      if (self.renditions.length) {
        tools.appendChild(el("button", { type: "button", className: "button gptimage-w-small", "data-gptimage-action": "preview", "data-image": String(image.id), "aria-expanded": "false" }, "Preview in place"));
      }
      item.appendChild(tools);
      if (self.renditions.length) {
        var frames = el("div", { className: "gptimage-w-frames", "data-role": "frames", hidden: "" });
        self.renditions.forEach(function (r) {
          var parts = String(r.ratio).split(":");
          var figure = el("figure", { className: "gptimage-w-frame" });
          var box = el("div", { className: "gptimage-w-frame-box" });
          box.style.aspectRatio = (parseFloat(parts[0]) || 1) + " / " + (parseFloat(parts[1]) || 1);
          box.appendChild(el("img", { src: image.url, alt: "" }));
          figure.appendChild(box);
          figure.appendChild(el("figcaption", {}, r.label + " (" + r.ratio + ")"));
          frames.appendChild(figure);
        });
        item.appendChild(frames);
      }
      holder.appendChild(item);
    });
  };

  Widget.prototype.preview = function (button) {
    var frames = button.closest(".gptimage-w-candidate").querySelector('[data-role="frames"]');
    var open = button.getAttribute("aria-expanded") === "true";
    button.setAttribute("aria-expanded", String(!open));
    frames.hidden = open;
  };

  /* "Edit this image": the candidate becomes the input of the next generation. */
  Widget.prototype.edit = function (image) {
    this.parentImage = image || null;
    var banner = this.root.querySelector("[data-gptimage-editing]");
    if (!image) {
      banner.hidden = true;
      return;
    }
    var mode = this.input("mode");
    if (mode) {
      mode.value = "image-to-image";
      mode.dispatchEvent(new Event("change", { bubbles: true }));
    }
    banner.querySelector("[data-role=text]").textContent =
      "Editing a candidate (" + image.width + " × " + image.height + "): say what to change, then Generate. The earlier candidates stay.";
    var thumb = banner.querySelector("img");
    thumb.src = image.url;
    banner.hidden = false;
    var prompt = this.input("prompt");
    if (prompt) {
      prompt.focus();
      prompt.select();
    }
  };

  Widget.prototype.final = function (card, s) {
    this.render(card, s, {});
    var steps = card.querySelector('[data-role="steps"]');
    steps.textContent = "";
    if (s.status === "succeeded") {
      if (s.images.length) this.say("Done: pick a candidate below, then save the form to use it.");
      return;
    }
    if (s.error) {
      this.note(card, s.error.next_step || s.error.message, "error");
      var detail = card.querySelector('[data-role="detail"]');
      detail.textContent = s.error.detail || "";  // rendered (and translated) by the server
      detail.hidden = !s.error.detail;
      var label = STEP_BUTTONS[s.error.next_action];
      if (label) {
        steps.appendChild(el("button", { type: "button", className: "button gptimage-w-small", "data-gptimage-action": "step", "data-step": s.error.next_action }, label));
      }
    }
    this.say("");
  };

  Widget.prototype.step = function (action) {
    if (action === "retry" || action === "regenerate") return this.generate();
    if (action === "smaller_tier") {
      var tiers = Array.prototype.slice.call(this.body.querySelectorAll('input[name="' + this.prefix + 'tier"]'));
      var usable = tiers.filter(function (input) { return !input.disabled; });
      if (usable.length) {
        usable[0].checked = true;
        usable[0].dispatchEvent(new Event("change", { bubbles: true }));
        usable[0].focus();
      }
      return;
    }
    var prompt = this.input("prompt");
    if (action === "rephrase" && prompt) prompt.focus();
    else if (this.panel) this.panel.open = true;
  };

  Widget.prototype.pick = function (imageId, button) {
    var same = imageId && this.pickInput.value === String(imageId);
    var chosen = same ? "" : imageId || "";
    this.pickInput.value = chosen;
    Array.prototype.forEach.call(this.root.querySelectorAll('[data-gptimage-action="pick"]'), function (b) {
      var on = chosen !== "" && b.getAttribute("data-image") === chosen;
      b.setAttribute("aria-pressed", String(on));
      b.classList.toggle("gptimage-w-chosen", on);
    });
    if (chosen) {
      var image = button && button.gptimageImage;
      var size = image ? " (" + image.width + " × " + image.height + ")" : "";
      this.pickedNote.textContent = "Chosen: a generated image" + size + ". Save the form to put it in this field.";
      this.fillAlt(image);
      this.pickedNote.hidden = false;
      if (this.fileInput && this.fileInput.value) this.fileInput.value = "";
      this.root.dispatchEvent(new CustomEvent("gptimage:picked", { bubbles: true, detail: { image: button && button.gptimageImage } }));
    } else {
      this.pickedNote.textContent = "";
      this.pickedNote.hidden = true;
    }
  };

  /* The suggested alt text into the form's alt field, unless the editor wrote their own. */
  Widget.prototype.fillAlt = function (image) {
    var altName = this.data.gptimageAltField;
    var form = this.root.closest("form");
    if (!altName || !image || !image.alt_text || !form) return;
    var formPrefix = this.name.slice(0, this.name.length - this.data.gptimageField.length);
    var input = form.querySelector('[name="' + formPrefix + altName + '"]');
    if (!input) return;
    if (input.value === "" || input.value === this.lastAlt) {
      input.value = image.alt_text;
      this.lastAlt = image.alt_text;
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
  };

  Widget.prototype.toggleHistory = function (button) {
    var self = this;
    var open = button.getAttribute("aria-expanded") === "true";
    button.setAttribute("aria-expanded", String(!open));
    this.historyEl.hidden = open;
    if (open) return;
    this.historyEl.textContent = "Loading…";
    var url = this.data.gptimageHistoryUrl + "?token=" + encodeURIComponent(this.data.gptimageToken);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json().then(function (body) { return { status: response.status, body: body }; }); })
      .then(function (answer) {
        self.historyEl.textContent = "";
        if (answer.status !== 200) {
          self.historyEl.textContent = answer.body.message || "The history could not be loaded.";
          return;
        }
        var rows = answer.body.generations || [];
        if (!rows.length) {
          self.historyEl.textContent = "Nothing has been generated for this field yet.";
          return;
        }
        var list = el("ol", { className: "gptimage-w-history-list" });
        rows.forEach(function (row) {
          var item = el("li", { className: "gptimage-w-history-item" });
          var p = row.status.params;
          item.appendChild(el("p", { className: "gptimage-w-history-prompt" }, row.prompt));
          item.appendChild(el("p", { className: "gptimage-w-quiet" },
            [row.status.status_label, p.ratio, p.tier, p.quality, row.requested_by, row.status.cost.label, (row.status.created_at || "").slice(0, 16).replace("T", " ")].filter(Boolean).join(" · ")));
          var thumbs = el("div", { className: "gptimage-w-thumbs", "data-role": "thumbs" });
          item.appendChild(thumbs);
          self.thumbs(item, row.status);
          list.appendChild(item);
        });
        self.historyEl.appendChild(list);
      }, function () {
        self.historyEl.textContent = "Could not reach the site to load the history.";
      });
  };

  ns.initWidget = function (root) {
    if (!root.gptimageWidget && root.hasAttribute("data-gptimage-token")) root.gptimageWidget = new Widget(root);
    return root.gptimageWidget;
  };

  function initIn(scope) {
    Array.prototype.forEach.call(scope.querySelectorAll("[data-gptimage-widget][data-gptimage-token]"), function (root) {
      if (root.closest(".empty-form")) return; // the admin's inline template row, cloned when added
      ns.initWidget(root);
    });
  }
  document.addEventListener("formset:added", function (event) { initIn(event.target); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { initIn(document); });
  else initIn(document);
})();
