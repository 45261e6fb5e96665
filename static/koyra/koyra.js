/* Koyra: the few lines of JavaScript the live deploy page needs on top of htmx + its ws extension. */
(function () {
  "use strict";

  function lastSeq() {
    var last = document.querySelector("#log > .ln:last-child");
    return last ? last.getAttribute("data-seq") : null;
  }

  // Resume where the page is: the server sends only lines after ?after=<seq>, on the first
  // connect and on every reconnect, so no line is shown twice and none is skipped.
  htmx.createWebSocket = function (url) {
    var seq = lastSeq();
    if (seq) {
      url += (url.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(seq);
    }
    var sock = new WebSocket(url, []);
    sock.binaryType = htmx.config.wsBinaryType;
    return sock;
  };

  // Follow the log while the reader is at its end; leave it alone once they scroll up. On a
  // desktop the log is its own scroll box; on a phone it is as long as the page.
  function atEnd(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  }
  var followLog = true;
  var followPage = false;
  document.addEventListener("htmx:wsBeforeMessage", function () {
    var log = document.getElementById("log");
    followLog = !log || atEnd(log);
    followPage = atEnd(document.scrollingElement);
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var log = document.getElementById("log");
    if (log && followLog) log.scrollTop = log.scrollHeight;
    if (followPage) window.scrollTo(0, document.scrollingElement.scrollHeight);
    // The final summary says the deploy ended: nothing live is followed any more, whatever
    // the socket does next (the server closes it; a proxy may hold it open a while).
    if (document.querySelector("#summary[data-finished]")) conn("", false);
  });

  function conn(text, on) {
    var el = document.getElementById("conn");
    if (el) {
      el.textContent = text;
      el.className = on ? "conn on" : "conn";
    }
  }
  document.addEventListener("htmx:wsOpen", function () {
    conn("following live", true);
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail.event.code;
    if (code === 1000 || document.querySelector("#summary[data-finished]")) {
      conn("", false); // the deploy finished: nothing more will come
    }
    else if ([1006, 1011, 1012, 1013].indexOf(code) >= 0) conn("reconnecting\u2026", false);
    else conn("not following (reload the page)", false);
  });

  // The runtime log page: an EventSource (it reconnects by itself, resuming after the last
  // line via Last-Event-ID); every line and notice is written as text, never parsed as HTML.
  function runtimeLog(box) {
    var source = new EventSource(box.getAttribute("data-stream"));
    function add(cls, task, text) {
      var follow = atEnd(box);
      var ln = document.createElement("div");
      ln.className = cls;
      if (task) {
        var label = document.createElement("span");
        label.className = "task";
        label.textContent = task;
        ln.appendChild(label);
      }
      ln.appendChild(document.createTextNode(text));
      box.appendChild(ln);
      while (box.childElementCount > 5000) box.removeChild(box.firstChild);
      if (follow) box.scrollTop = box.scrollHeight;
    }
    source.addEventListener("open", function () { conn("following live", true); });
    source.addEventListener("line", function (e) {
      var d = JSON.parse(e.data);
      add("ln", d.task, d.text);
    });
    source.addEventListener("notice", function (e) {
      add("ln notice", "", JSON.parse(e.data).text);
    });
    source.addEventListener("error", function () {
      conn(source.readyState === 2 ? "not following (reload the page)" : "reconnecting\u2026", false);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var runtime = document.getElementById("runtime-log");
    if (runtime) runtimeLog(runtime);
    var log = document.getElementById("log");
    if (log && document.querySelector("[ws-connect]")) log.scrollTop = log.scrollHeight;
  });
})();
