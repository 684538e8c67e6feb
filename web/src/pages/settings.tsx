// Notification preferences: toasts always; browser notifications only when the person opts in.
import { useState } from "preact/hooks";

const KEY = "salesboost.browser-notifications";

export function browserNotificationsOn(): boolean {
  return localStorage.getItem(KEY) === "on" && "Notification" in globalThis && Notification.permission === "granted";
}

export function notify(text: string): void {
  if (browserNotificationsOn()) new Notification("SalesBoost", { body: text });
}

export function Settings() {
  const supported = "Notification" in globalThis;
  const [on, setOn] = useState(browserNotificationsOn());
  const [note, setNote] = useState<string | null>(null);

  async function toggle(want: boolean) {
    setNote(null);
    if (!want) {
      localStorage.setItem(KEY, "off");
      setOn(false);
      return;
    }
    const permission = await Notification.requestPermission();
    if (permission === "granted") {
      localStorage.setItem(KEY, "on");
      setOn(true);
    } else {
      setNote("The browser did not allow notifications; change it in the browser's site settings.");
    }
  }

  return (
    <section class="narrow">
      <h1>Notifications</h1>
      <p>New assignments and deadlines within three days always show as a message on the page.</p>
      {supported ? (
        <label>
          <input type="checkbox" checked={on} onChange={(e) => toggle(e.currentTarget.checked)} /> Also as browser
          notifications
        </label>
      ) : (
        <p class="muted">This browser does not offer notifications.</p>
      )}
      {note && (
        <p class="error" role="alert">
          {note}
        </p>
      )}
    </section>
  );
}
