/* scimbridge admin pages: progressive enhancement only. Every page and every action works
   without this file; it adds search as you type, confirmation dialogs and copy buttons. */
(function () {
  "use strict";

  // -- search as you type -------------------------------------------------------------------
  // A form with data-live-search="ID" reloads the element ID from the server as its fields
  // change: the same GET the form sends without script, answered by the same page.

  function queryOf(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (value !== "") params.append(name, value);
    });
    return params.toString();
  }

  function liveSearch(form) {
    var target = document.getElementById(form.dataset.liveSearch);
    var counter = document.getElementById(form.dataset.liveSearch + "-count");
    if (!target || !window.fetch || !window.DOMParser) return;
    var timer = null;
    var controller = null;
    var shown = queryOf(form);

    function refresh() {
      var query = queryOf(form);
      if (query === shown) return;
      shown = query;
      var url = form.action + (query ? "?" + query : "");
      if (controller) controller.abort();
      controller = new AbortController();
      target.setAttribute("aria-busy", "true");
      fetch(url, { credentials: "same-origin", signal: controller.signal })
        .then(function (response) {
          if (!response.ok) throw new Error("status " + response.status);
          return response.text().then(function (html) {
            return { html: html, url: response.url };
          });
        })
        .then(function (answer) {
          var page = new DOMParser().parseFromString(answer.html, "text/html");
          var fresh = page.getElementById(target.id);
          if (!fresh) {
            // Not the same page (the session ended: the login page): go there for real.
            window.location.assign(answer.url);
            return;
          }
          target.innerHTML = fresh.innerHTML;
          var freshCounter = page.getElementById(counter ? counter.id : "");
          if (counter && freshCounter) counter.textContent = freshCounter.textContent;
          window.history.replaceState(null, "", url);
        })
        .catch(function (error) {
          if (error.name !== "AbortError") window.location.assign(url);
        })
        .finally(function () {
          target.removeAttribute("aria-busy");
        });
    }

    form.addEventListener("input", function (event) {
      if (event.target.type !== "search") return;
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 250);
    });
    form.addEventListener("change", function (event) {
      if (event.target.tagName === "SELECT") refresh();
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      window.clearTimeout(timer);
      refresh();
    });
  }

  // -- confirmation dialogs -------------------------------------------------------------------
  // A form with data-confirm="question" asks first in a modal dialog (Escape or the second
  // button keeps things as they are). data-confirm-yes and data-confirm-no name the two
  // buttons; each defaults so that the two never read the same ("Cancel" the action would
  // otherwise face "Cancel" the dialog). Delegated, so forms loaded by the live search are
  // covered too.

  function choices(form, button) {
    var action = button ? button.childNodes[0].textContent.trim() : "Confirm";
    var yes = form.dataset.confirmYes || action;
    var no = form.dataset.confirmNo || "Cancel";
    if (yes.toLowerCase() === no.toLowerCase()) no = "Keep";
    return { yes: yes, no: no };
  }

  function ask(question, labels, dangerous) {
    return new Promise(function (resolve) {
      var opener = document.activeElement;
      var dialog = document.createElement("dialog");
      dialog.className = "confirm";
      var text = document.createElement("p");
      text.id = "confirm-question";
      text.textContent = question;
      dialog.setAttribute("aria-labelledby", text.id);
      var row = document.createElement("div");
      row.className = "button-row";
      var yes = document.createElement("button");
      yes.type = "button";
      yes.className = dangerous ? "danger" : "";
      yes.textContent = labels.yes;
      var no = document.createElement("button");
      no.type = "button";
      no.className = "secondary";
      no.textContent = labels.no;
      row.append(yes, no);
      dialog.append(text, row);
      yes.addEventListener("click", function () { dialog.close("yes"); });
      no.addEventListener("click", function () { dialog.close("no"); });
      dialog.addEventListener("close", function () {
        var confirmed = dialog.returnValue === "yes";
        dialog.remove();
        if (opener && opener.focus) opener.focus();
        resolve(confirmed);
      });
      document.body.append(dialog);
      dialog.showModal();
      no.focus();
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (form.dataset.confirmed === "yes") {
      delete form.dataset.confirmed;
      return;
    }
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    var dangerous = button ? button.classList.contains("danger") : false;
    ask(form.dataset.confirm, choices(form, button), dangerous).then(function (confirmed) {
      if (!confirmed) return;
      form.dataset.confirmed = "yes";
      if (form.requestSubmit) form.requestSubmit();
      else form.submit();
    });
  });

  // -- secrets shown once -------------------------------------------------------------------
  // Read-only fields holding a token or password select themselves and get a Copy button.

  function copyable(input) {
    input.addEventListener("focus", function () { input.select(); });
    if (!navigator.clipboard) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary copy";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(input.value).then(function () {
        button.textContent = "Copied";
        window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
      });
    });
    input.after(button);
  }

  document.querySelectorAll("form[data-live-search]").forEach(liveSearch);
  document.querySelectorAll("input[data-select-on-focus]").forEach(copyable);
})();
