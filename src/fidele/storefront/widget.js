/* fidele storefront widget: one <script src=".../storefront/widget.js" data-merchant="1"
   data-token="..."> line. A launcher and a panel in a Shadow DOM; talks only to the server it
   was loaded from; sets no cookie. FR/EN follows <html lang> (also when it changes). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__fideleWidget) return;
  window.__fideleWidget = true;
  var API = (script.getAttribute("data-api") || new URL(script.src, location.href).origin) + "/storefront/v1/";
  var MERCHANT = script.getAttribute("data-merchant") || "";
  var TOKEN = script.getAttribute("data-token") || "";

  var T = {
    en: {
      title: "Rewards", close: "Close", points: "points", available: "Available", pending: "pending",
      tier: "Tier", rewards: "Rewards", redeem: "Redeem", copy: "Copy", copied: "Copied",
      share: "Share", code: "Your code", referral: "Refer a friend", friends: "friends joined",
      earned: "rewards earned", earn: "Ways to earn", history: "History", empty: "Nothing yet.",
      join: "Join now", loading: "Loading…", error: "Something went wrong. Please try again.",
      expiring: "Points expiring", refText: "Give your friends a welcome gift with your link:",
      shareText: "Join me at this shop with my link:", progress: "Progress to the next tier",
      unknown: "Your account is not in the programme yet: it will be after your first order."
    },
    fr: {
      title: "Fidélité", close: "Fermer", points: "points", available: "Disponibles", pending: "en attente",
      tier: "Palier", rewards: "Récompenses", redeem: "Échanger", copy: "Copier", copied: "Copié",
      share: "Partager", code: "Votre code", referral: "Parrainer un ami", friends: "amis inscrits",
      earned: "récompenses gagnées", earn: "Gagner des points", history: "Historique", empty: "Rien pour l'instant.",
      join: "Rejoindre", loading: "Chargement…", error: "Une erreur est survenue. Veuillez réessayer.",
      expiring: "Points bientôt expirés", refText: "Offrez un cadeau de bienvenue à vos amis avec votre lien :",
      shareText: "Rejoins-moi dans cette boutique avec mon lien :", progress: "Progression vers le palier suivant",
      unknown: "Votre compte n'est pas encore dans le programme : il le sera après votre première commande."
    }
  };

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".launch{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:999px;padding:12px 20px;font-size:15px;font-weight:600;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);background:var(--p);color:var(--t)}",
    ".launch:focus-visible,button:focus-visible,a:focus-visible,input:focus-visible{outline:3px solid #111;outline-offset:2px}",
    ".panel{position:fixed;right:20px;bottom:80px;z-index:2147483001;width:min(380px,calc(100vw - 40px));max-height:min(640px,calc(100vh - 110px));overflow:auto;background:#fff;color:#1d1d1f;border-radius:12px;box-shadow:0 10px 40px rgba(0,0,0,.3);font-size:14px;line-height:1.45}",
    ".panel[hidden]{display:none}",
    ".head{display:flex;justify-content:space-between;align-items:center;padding:14px 16px;background:var(--p);color:var(--t);border-radius:12px 12px 0 0}",
    ".head h2{margin:0;font-size:17px}",
    ".x{background:transparent;border:0;color:inherit;font-size:22px;line-height:1;cursor:pointer;padding:2px 8px}",
    "section{padding:12px 16px;border-bottom:1px solid #eee}",
    "h3{margin:0 0 8px;font-size:14px;text-transform:uppercase;letter-spacing:.04em;color:#555}",
    ".big{font-size:30px;font-weight:700}",
    ".muted{color:#595959}",
    ".bar{height:10px;background:#eee;border-radius:99px;overflow:hidden;margin:6px 0}",
    ".bar>div{height:100%;background:var(--p);width:0}",
    ".warn{background:#fff4e5;color:#663c00;padding:8px 10px;border-radius:6px;margin-top:8px}",
    "ul{list-style:none;margin:0;padding:0}",
    "li{padding:8px 0;border-bottom:1px solid #f2f2f2}",
    "li:last-child{border-bottom:0}",
    ".row{display:flex;justify-content:space-between;align-items:center;gap:8px}",
    ".btn{border:0;border-radius:6px;padding:6px 12px;cursor:pointer;font-size:13px;font-weight:600;background:var(--p);color:var(--t)}",
    ".btn.alt{background:#fff;color:#1d1d1f;border:1px solid #767676}",
    ".btn[disabled]{opacity:.6;cursor:default}",
    "input{width:100%;padding:6px 8px;border:1px solid #767676;border-radius:6px;font:13px ui-monospace,monospace}",
    ".code{margin-top:6px;display:flex;gap:6px}",
    ".plus{color:#1b6e20;font-weight:600}.minus{color:#a4000f;font-weight:600}",
    ".err{color:#a4000f}"
  ].join("\n");

  var host = document.createElement("div");
  host.setAttribute("data-fidele", "widget");
  var root = host.attachShadow({ mode: "open" });
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }

  var lang = pick(document.documentElement.lang);
  var program = null, data = {}, codes = {}, open = false;
  var launcher = el("button", { "class": "launch", id: "fdl-launcher", type: "button",
    "aria-haspopup": "dialog", "aria-expanded": "false", "aria-controls": "fdl-panel" });
  var panel = el("div", { "class": "panel", id: "fdl-panel", role: "dialog", "aria-modal": "true",
    "aria-labelledby": "fdl-title", hidden: "" });
  root.appendChild(launcher);
  root.appendChild(panel);

  function pick(tag) { return /^fr\b/i.test(tag || "") ? "fr" : "en"; }
  function t(key) { return T[lang][key]; }
  function el(name, attrs, kids) {
    var node = document.createElement(name);
    for (var k in attrs || {}) if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
    (kids || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function num(n) { return new Intl.NumberFormat(lang === "fr" ? "fr-FR" : "en-GB").format(n); }
  function date(iso) { return new Date(iso).toLocaleDateString(lang === "fr" ? "fr-FR" : "en-GB"); }

  function call(path, options) {
    options = options || {};
    var sep = path.indexOf("?") < 0 ? "?" : "&";
    var url = API + path + sep + "merchant=" + encodeURIComponent(MERCHANT) + "&lang=" + lang;
    var headers = { "Accept": "application/json" };
    if (TOKEN) headers.Authorization = "Bearer " + TOKEN;
    if (options.body) headers["Content-Type"] = "application/json";
    for (var h in options.headers || {}) headers[h] = options.headers[h];
    return fetch(url, { method: options.method || "GET", headers: headers, body: options.body,
      credentials: "omit", mode: "cors", cache: "no-store" }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { var e = new Error(body.detail || r.status); e.status = r.status; throw e; }
        return body;
      });
    });
  }

  function applyLook() {
    var look = (program && program.look) || {};
    host.style.setProperty("--p", look.primary || "#5b3cc4");
    host.style.setProperty("--t", look.text || "#ffffff");
    launcher.textContent = (lang === "fr" ? look.launcher_fr : look.launcher_en) || t("title");
    launcher.setAttribute("aria-label", launcher.textContent);
  }

  function loadProgram() {
    return call("program").then(function (p) { program = p; applyLook(); }, function () { applyLook(); });
  }

  function loadCustomer() {
    if (!TOKEN) return Promise.resolve();
    return Promise.all(["me", "rewards", "referral", "activities", "history?limit=20"].map(function (p) {
      return call(p).then(function (v) { return v; }, function (e) { return { error: e }; });
    })).then(function (r) {
      data = { me: r[0], rewards: r[1], referral: r[2], activities: r[3], history: r[4] };
    });
  }

  function render() {
    var focusId = root.activeElement && root.activeElement.id;
    panel.textContent = "";
    var close = el("button", { "class": "x", id: "fdl-close", type: "button", "aria-label": t("close") }, ["×"]);
    close.addEventListener("click", hide);
    panel.appendChild(el("div", { "class": "head" }, [
      el("h2", { id: "fdl-title" }, [(program && program.name) || t("title")]), close]));
    if (!TOKEN || (data.me && data.me.error && data.me.error.status === 404)) {
      if (TOKEN) panel.appendChild(el("section", {}, [el("p", {}, [t("unknown")])]));
      anonymous();
    } else if (!data.me) {
      panel.appendChild(el("section", {}, [t("loading")]));
    } else if (data.me.error) {
      panel.appendChild(el("section", { "class": "err", role: "alert" }, [t("error")]));
    } else {
      balance(); rewardList(); referral(); ways(data.activities); historyList();
    }
    var again = focusId && root.getElementById(focusId);
    if (again) again.focus();
  }

  function balance() {
    var me = data.me;
    var s = el("section", { id: "fdl-balance-section" }, [
      el("h3", {}, [t("available")]),
      el("div", { "class": "big" }, [el("span", { id: "fdl-balance" }, [num(me.available)]), " " + t("points")])
    ]);
    if (me.pending) s.appendChild(el("div", { "class": "muted" }, ["+ " + num(me.pending) + " " + t("pending")]));
    if (me.tier) {
      var fill = el("div");
      fill.style.width = me.tier_percent + "%";
      s.appendChild(el("p", {}, [t("tier") + (lang === "fr" ? " : " : ": "), el("strong", { id: "fdl-tier" }, [me.tier.name])]));
      s.appendChild(el("div", { "class": "bar", role: "progressbar", "aria-label": t("progress"),
        "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(me.tier_percent) }, [fill]));
      if (me.tier_text) s.appendChild(el("div", { "class": "muted", id: "fdl-tier-text" }, [me.tier_text]));
    }
    if (me.expiring) s.appendChild(el("div", { "class": "warn", id: "fdl-expiring", role: "note",
      "aria-label": t("expiring") }, [me.expiring.text]));
    panel.appendChild(s);
  }

  function rewardList() {
    var list = el("ul");
    (data.rewards && !data.rewards.error ? data.rewards : []).forEach(function (r) {
      var item = el("li", { "data-reward": String(r.id) });
      var row = el("div", { "class": "row" }, [el("div", {}, [el("strong", {}, [r.name]), el("br"),
        el("span", { "class": "muted" }, [num(r.points_cost) + " " + t("points") + " · " + r.text])])]);
      if (r.affordable) {
        var b = el("button", { "class": "btn fdl-redeem", type: "button", id: "fdl-redeem-" + r.id,
          "aria-label": t("redeem") + " " + r.name }, [t("redeem")]);
        b.addEventListener("click", function () { redeem(r, b); });
        row.appendChild(b);
      }
      item.appendChild(row);
      if (codes[r.id]) item.appendChild(codeBox("fdl-code-" + r.id, codes[r.id], t("code") + " " + r.name));
      list.appendChild(item);
    });
    if (!list.firstChild) list.appendChild(el("li", { "class": "muted" }, [t("empty")]));
    panel.appendChild(el("section", { id: "fdl-rewards" }, [el("h3", {}, [t("rewards")]), list]));
  }

  function codeBox(id, value, label) {
    var input = el("input", { id: id, "class": "fdl-code", readonly: "", value: value, "aria-label": label });
    var copy = el("button", { "class": "btn alt", type: "button", id: id + "-copy", "aria-label": t("copy") + " " + label }, [t("copy")]);
    copy.addEventListener("click", function () { copyText(input, copy); });
    return el("div", { "class": "code" }, [input, copy]);
  }

  function copyText(input, button) {
    var done = function () { button.textContent = t("copied"); };
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { legacyCopy(); done(); });
    } else { legacyCopy(); done(); }
  }
  function legacyCopy() { try { document.execCommand("copy"); } catch (e) { /* the text stays selected */ } }

  function key() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + Math.random().toString(16).slice(2);
  }

  function redeem(reward, button) {
    button.disabled = true;
    var idem = button.getAttribute("data-key") || key();
    button.setAttribute("data-key", idem);  // a retry after a failure is the same redemption
    call("redemptions", { method: "POST", headers: { "Idempotency-Key": idem },
      body: JSON.stringify({ reward_id: reward.id }) }).then(function (out) {
      codes[reward.id] = out.code;
      return loadCustomer();
    }).then(function () {
      render();
      var box = root.getElementById("fdl-code-" + reward.id);
      if (box) box.focus();
    }, function (e) {
      button.disabled = false;
      var msg = el("div", { "class": "err", role: "alert" }, [e.message || t("error")]);
      button.parentNode.parentNode.appendChild(msg);
    });
  }

  function referral() {
    var r = data.referral;
    if (!r || r.error) return;
    var s = el("section", { id: "fdl-referral" }, [el("h3", {}, [t("referral")]), el("p", {}, [t("refText")])]);
    var box = codeBox("fdl-ref-link", r.link, t("referral"));
    if (navigator.share) {
      var share = el("button", { "class": "btn", type: "button", id: "fdl-ref-share" }, [t("share")]);
      share.addEventListener("click", function () {
        navigator.share({ title: t("referral"), text: t("shareText"), url: r.link }).catch(function () { /* cancelled */ });
      });
      box.appendChild(share);
    } else {
      box.appendChild(el("a", { "class": "btn", id: "fdl-ref-share",
        href: "mailto:?subject=" + encodeURIComponent(t("referral")) + "&body=" + encodeURIComponent(t("shareText") + " " + r.link) }, [t("share")]));
    }
    s.appendChild(box);
    s.appendChild(el("p", { "class": "muted" }, [num(r.friends_joined) + " " + t("friends") + " · " + num(r.rewards_earned) + " " + t("earned")]));
    panel.appendChild(s);
  }

  function ways(list) {
    var items = (list && !list.error ? list : []).map(function (a) {
      return el("li", { "class": "row" }, [el("span", {}, [a.label]), el("strong", {}, [a.kind === "order" ? "" : "+" + num(a.points)])]);
    });
    panel.appendChild(el("section", { id: "fdl-earn" }, [el("h3", {}, [t("earn")]), el("ul", {}, items)]));
  }

  function historyList() {
    var rows = data.history && !data.history.error ? data.history : [];
    var items = rows.map(function (h) {
      return el("li", { "class": "row" }, [el("span", {}, [h.label + (h.pending ? " (" + t("pending") + ")" : "") + " · " + date(h.at)]),
        el("span", { "class": h.points < 0 ? "minus" : "plus" }, [(h.points > 0 ? "+" : "") + num(h.points)])]);
    });
    if (!items.length) items.push(el("li", { "class": "muted" }, [t("empty")]));
    panel.appendChild(el("section", { id: "fdl-history" }, [el("h3", {}, [t("history")]), el("ul", {}, items)]));
  }

  function anonymous() {
    if (!program) return;
    var s = el("section", { id: "fdl-join" }, [el("p", {}, [program.signup])]);
    if (program.look && program.look.signup_url) s.appendChild(el("a", { "class": "btn", href: program.look.signup_url }, [t("join")]));
    panel.appendChild(s);
    ways(program.earn);
    panel.appendChild(el("section", {}, [el("h3", {}, [t("rewards")]), el("ul", {}, program.rewards.map(function (r) {
      return el("li", { "class": "row" }, [el("span", {}, [r.name]), el("strong", {}, [num(r.points_cost) + " " + t("points")])]);
    }))]));
  }

  function focusables() {
    return Array.prototype.filter.call(panel.querySelectorAll("button,a[href],input"), function (n) { return !n.disabled; });
  }

  function show() {
    open = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    render();
    root.getElementById("fdl-close").focus();
    loadCustomer().then(function () { if (open) render(); });
  }

  function hide() {
    open = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", function () { (open ? hide : show)(); });
  panel.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { ev.preventDefault(); hide(); return; }
    if (ev.key !== "Tab") return;
    var items = focusables();
    if (!items.length) return;
    var first = items[0], last = items[items.length - 1], active = root.activeElement;
    if (ev.shiftKey && (active === first || !panel.contains(active))) { ev.preventDefault(); last.focus(); }
    else if (!ev.shiftKey && active === last) { ev.preventDefault(); first.focus(); }
  });

  new MutationObserver(function () {
    var now = pick(document.documentElement.lang);
    if (now === lang) return;
    lang = now;
    loadProgram().then(function () { return open ? loadCustomer() : null; }).then(function () { if (open) render(); });
  }).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });

  function mount() { applyLook(); document.body.appendChild(host); loadProgram(); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
