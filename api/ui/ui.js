// The status page's one script: it keeps the page live. The element marked data-live is replaced
// by each "update" the server streams there (HTML the server rendered and escaped); EventSource
// reconnects by itself. Without this script the page shows the state it was rendered with.
(function () {
  'use strict';
  var live = document.querySelector('[data-live]');
  var badge = document.getElementById('live');
  if (!live || !window.EventSource) return;
  function say(text, on) {
    badge.textContent = text;
    badge.className = 'live ' + (on ? 'on' : 'off');
  }
  var es = new EventSource(live.getAttribute('data-live'));
  es.onopen = function () { say('live', true); };
  es.addEventListener('update', function (e) {
    live.innerHTML = e.data;
    say('live · ' + new Date().toLocaleTimeString(), true);
  });
  es.addEventListener('deleted', function () {
    es.close();
    document.body.classList.add('gone');
    say('deleted', false);
  });
  es.onerror = function () {
    // CLOSED: the server refused the stream (logged out, token revoked); else it reconnects.
    say(es.readyState === EventSource.CLOSED ? 'not live: reload the page' : 'reconnecting…', false);
  };
})();
