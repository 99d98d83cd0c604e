/* tagserver browser client: tagserver('track', name, customData, {eventID}) mirrors fbq.
   Sends each event to the first-party server, then runs the commands it answers with. */
(function (w, d) {
  'use strict';
  var me = d.currentScript;
  var endpoint = (me && me.getAttribute('data-endpoint')) ||
    (me ? new URL(me.src, w.location.href).origin : '') + '/e';
  var pixelSrc = (me && me.getAttribute('data-pixel-src')) ||
    'https://connect.facebook.net/en_US/fbevents.js';
  var consent = null, user = null, inited = {};

  function loadPixel() {
    if (w.fbq) return;
    var n = w.fbq = function () {
      n.callMethod ? n.callMethod.apply(n, arguments) : n.queue.push(arguments);
    };
    if (!w._fbq) w._fbq = n;
    n.push = n; n.loaded = true; n.version = '2.0'; n.queue = [];
    var s = d.createElement('script'); s.async = true; s.src = pixelSrc;
    (d.head || d.documentElement).appendChild(s);
  }

  function run(commands) {
    (commands || []).forEach(function (c) {
      if (c.type === 'fbq') {
        loadPixel();
        var id = c.args[1];  /* trackSingle(Custom) names its pixel; dataProcessingOptions none */
        if (String(c.args[0]).indexOf('trackSingle') === 0 && !inited[id]) {
          inited[id] = true; w.fbq('init', id);
        }
        w.fbq.apply(w, c.args);
      } else if (c.type === 'img') {
        new Image().src = c.src;
      }
    });
  }

  function send(name, customData, options) {
    var body = {
      event_name: name,
      event_source_url: w.location.href,
      referrer_url: d.referrer || undefined,
      custom_data: customData || {}
    };
    if (options && options.eventID) body.event_id = options.eventID;
    if (consent) body.consent = consent;
    if (user) body.user_data = user;
    var text = JSON.stringify(body);
    if (w.fetch) {
      return w.fetch(endpoint, {
        method: 'POST', body: text, keepalive: true, credentials: 'include',
        headers: {'Content-Type': 'text/plain;charset=UTF-8'}
      }).then(function (r) { return r.ok ? r.json() : null; })
        .then(function (reply) { if (reply) run(reply.commands); })
        .catch(function () { if (navigator.sendBeacon) navigator.sendBeacon(endpoint, text); });
    }
    if (navigator.sendBeacon) navigator.sendBeacon(endpoint, text);
  }

  function api(cmd, a, b, c) {
    if (cmd === 'track' || cmd === 'trackCustom') return send(a, b, c);
    if (cmd === 'consent') consent = a;
    else if (cmd === 'user') user = a;
  }

  var queued = (w.tagserver && w.tagserver.q) || [];
  w.tagserver = api;
  queued.forEach(function (args) { api.apply(null, args); });
})(window, document);
