// Runs after textual.js (which starts the terminal on window.onload): the WebSocket
// goes to this page's own origin (wss: behind a TLS proxy), and the terminal starts
// once the bundled font is loaded, so xterm.js measures its cells with that font.
(function () {
  const terminal = document.getElementById("terminal");
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  terminal.dataset.sessionWebsocketUrl = scheme + "//" + window.location.host + "/ws";
  const start = window.onload;
  window.onload = null;
  window.addEventListener("load", function (event) {
    const size = (terminal.dataset.fontSize || "16") + "px";
    const ready = document.fonts ? document.fonts.load(size + ' "Roboto Mono"') : Promise.resolve();
    ready.catch(function () {}).then(function () {
      if (start) start.call(window, event);
    });
  });
})();
