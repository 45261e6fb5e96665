/* Koyra: the few lines of JavaScript the live pages need on top of htmx + its ws extension,
   and the copy buttons. */
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

  // Copy buttons: <button data-copy="ID" hidden> copies the text of the element #ID (the
  // webhook secret, shown once, and the payload URL). Hidden until this script runs, so a
  // page without JavaScript shows no button that does nothing. The Clipboard API exists only
  // in a secure context (https, localhost): over plain http the text is selected and copied
  // with execCommand, and when even that is refused it stays selected for Ctrl+C.
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function copyBySelection(el) {
    selectText(el);
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }
  function showCopied(button, ok) {
    var label = button.getAttribute("data-label");
    if (!label) button.setAttribute("data-label", (label = button.textContent));
    button.textContent = ok ? "Copied" : "Selected: press Ctrl+C";
    button.classList.toggle("copied", ok);
    window.clearTimeout(Number(button.getAttribute("data-timer")));
    button.setAttribute("data-timer", window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove("copied");
    }, 3000));
  }
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("button[data-copy]");
    var el = button && document.getElementById(button.getAttribute("data-copy"));
    if (!el) return;
    var text = el.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { showCopied(button, true); },
        function () { showCopied(button, copyBySelection(el)); }
      );
    } else {
      showCopied(button, copyBySelection(el));
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button[data-copy]").forEach(function (b) { b.hidden = false; });
    var runtime = document.getElementById("runtime-log");
    if (runtime) runtimeLog(runtime);
    var log = document.getElementById("log");
    if (log && document.querySelector("[ws-connect]")) log.scrollTop = log.scrollHeight;
  });
})();
