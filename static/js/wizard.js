// Show only the fields of the chosen option (datastore kind, install source). Without
// JavaScript every group stays visible and the server ignores what does not apply.
document.querySelectorAll("form[data-toggle-group]").forEach((form) => {
  const name = form.dataset.toggleGroup;
  const update = () => {
    const chosen = form.querySelector(`input[name="${name}"]:checked`);
    form.querySelectorAll("[data-show-when]").forEach((group) => {
      // data-show-when lists the values (space-separated) under which the group shows.
      group.hidden = !chosen || !group.dataset.showWhen.split(" ").includes(chosen.value);
    });
  };
  form.addEventListener("change", (event) => { if (event.target.name === name) update(); });
  update();
});
// Host rows: show the key fields or the password field, as the row's "log in with" says.
document.querySelectorAll("fieldset.host").forEach((host) => {
  const auth = host.querySelector('select[name$="-auth"]');
  if (!auth) return;
  const update = () => {
    host.querySelector(".auth-key").hidden = auth.value !== "key";
    host.querySelector(".auth-password").hidden = auth.value !== "password";
  };
  auth.addEventListener("change", update);
  update();
});
// A select or radio marked data-refresh (the datastore, the engine version) reloads the step
// with that choice, so the server can ask the cloud again (the versions and classes RDS sells
// depend on the engine and the version). Without
// JavaScript the "show the classes" button does the same; with it the button is removed, so
// that Enter in a field still means Next (the first submit button is the form's default).
document.querySelectorAll("select[data-refresh], input[type=radio][data-refresh]").forEach((select) => {
  const button = select.form.querySelector("button[data-refresh-button]");
  if (button) button.remove();
  select.addEventListener("change", () => {
    const action = document.createElement("input");
    action.type = "hidden";
    action.name = "action";
    action.value = select.dataset.refresh;
    select.form.appendChild(action);
    select.form.submit();
  });
});
