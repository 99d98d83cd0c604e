/* tagserver browser client. Source: client_js/t.js; the package serves a copy (tagserver/static).
   tagserver('track'|'trackCustom', name, customData, {eventID, transport: 'beacon'}),
   tagserver('consent', {ad_storage: 'granted'|'denied', ...}), tagserver('user', {em, ph, ...}).
   <script> attributes: data-endpoint, data-pixel-src, data-pageview="off". */
(function (w, d, n) {
  'use strict';
  if (w[n] && w[n].loaded) return;
  var me = d.currentScript, loc = w.location, nav = w.navigator;
  function attr(k) { return me && me.getAttribute('data-' + k); }
  // the server replaces the path after the marker with its collect path, relative to this script
  var endpoint = attr('endpoint') || new URL(/*collect*/'e', (me && me.src) || loc.href).href;
  var pixelSrc = attr('pixel-src') || 'https://connect.facebook.net/en_US/fbevents.js';
  var consent = null, user = null, inited = {}, pixel = false;
  var ref = d.referrer, last = null, auto = attr('pageview') !== 'off';
  // the first hit of a page goes alone, so that concurrent hits cannot mint different cookies
  var gate = 0, held = [], leaving = false; // gate: 0 first hit not sent, 1 in flight, 2 open

  function assign(a, b) {
    var o = {}, k;
    for (k in a) o[k] = a[k];
    for (k in b) o[k] = b[k];
    return o;
  }

  function fbq() {
    if (!pixel) {
      pixel = true;
      if (!w.fbq) {
        var f = w.fbq = function () {
          f.callMethod ? f.callMethod.apply(f, arguments) : f.queue.push(arguments);
        };
        if (!w._fbq) w._fbq = f;
        f.push = f; f.loaded = true; f.version = '2.0'; f.queue = [];
        var s = d.createElement('script');
        s.async = true; s.src = pixelSrc;
        (d.head || d.documentElement).appendChild(s);
      }
    }
    return w.fbq;
  }

  function run(commands) {
    (commands || []).forEach(function (c) {
      if (c.type === 'fbq' && c.args) {
        var f = fbq(), id = c.args[1];  /* init on trackSingle*: dataProcessingOptions goes first */
        if (/^trackSingle/.test(c.args[0]) && !inited[id]) { inited[id] = 1; f('init', id); }
        f.apply(w, c.args);
      } else if (c.type === 'img' && c.src) {
        new Image().src = c.src;
      }
    });
  }

  function beacon(text) {
    if (nav.sendBeacon) nav.sendBeacon(endpoint, text);
  }

  function post(text) {
    var opener = !gate;
    if (opener) gate = 1;
    function done() { if (opener) { gate = 2; held.splice(0).forEach(post); } }
    w.fetch(endpoint, { method: 'POST', body: text, keepalive: true, credentials: 'include' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (reply) { done(); if (reply) run(reply.commands); },
            function () { done(); if (leaving) beacon(text); });
  }

  function send(body, viaBeacon) {
    var text = JSON.stringify(body);
    if (viaBeacon || leaving || !w.fetch) beacon(text);
    else if (gate === 1) held.push(text);
    else post(text);
  }

  function track(name, data, options) {
    options = options || {};
    var body = { event_name: String(name), event_source_url: loc.href, custom_data: data || {} };
    if (ref) body.referrer_url = ref;
    if (options.eventID != null) body.event_id = String(options.eventID);
    if (consent) body.consent = consent;
    if (user) body.user_data = user;
    send(body, options.transport === 'beacon');
  }

  function pageview() {
    var url = loc.href.split('#')[0];
    if (url === last) return;
    if (last) ref = last;
    last = url;
    track('PageView');
  }

  function api(cmd, a, b, c) {
    if (cmd === 'track' || cmd === 'trackCustom') {
      if (auto) { auto = false; pageview(); }
      track(a, b, c);
    } else if (cmd === 'consent') {
      consent = assign(consent, a);
      if (pixel) w.fbq('consent', consent.ad_storage === 'denied' ? 'revoke' : 'grant');
    } else if (cmd === 'user') {
      user = a ? assign(user, a) : null;
    }
  }

  // beacon from pagehide on (the page is going: no answer will be read); a hidden page still
  // sends what waited for the first answer, which may never come if the page is frozen
  function leave(e) {
    if (e.type !== 'visibilitychange') leaving = e.type === 'pagehide';
    if (leaving || d.visibilityState === 'hidden') held.splice(0).forEach(beacon);
  }
  w.addEventListener('pagehide', leave);
  w.addEventListener('pageshow', leave);
  d.addEventListener('visibilitychange', leave);

  var queue = (w[n] && w[n].q) || [];
  w[n] = api;
  api.loaded = true;
  queue.forEach(function (args) { api.apply(null, args); });
  if (auto) {
    auto = false;
    pageview();
  }
  if (attr('pageview') !== 'off') {
    ['pushState', 'replaceState'].forEach(function (k) {
      var original = history[k];
      history[k] = function () {
        var result = original.apply(this, arguments);
        pageview();
        return result;
      };
    });
    w.addEventListener('popstate', pageview);
  }
})(window, document, 'tagserver');
