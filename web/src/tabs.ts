// Tabs operable from the keyboard (WAI-ARIA tabs pattern: arrows move, Home/End jump).
export function setupTabs(): void {
  const tabs = [...document.querySelectorAll<HTMLButtonElement>('[role=tab]')];
  const select = (t: HTMLButtonElement, focus = false) => {
    for (const o of tabs) {
      const on = o === t;
      o.setAttribute('aria-selected', String(on));
      o.tabIndex = on ? 0 : -1;
      document.getElementById(o.getAttribute('aria-controls')!)!.hidden = !on;
    }
    if (focus) t.focus();
    history.replaceState(null, '', '#' + t.id.slice(4));
  };
  tabs.forEach((t, i) => {
    t.addEventListener('click', () => select(t));
    t.addEventListener('keydown', (e) => {
      const n = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? tabs.length - 1 : -1;
      if (n === -1 && !(e.key === 'ArrowRight' || e.key === 'ArrowLeft')) return;
      e.preventDefault();
      select(tabs[(n + tabs.length) % tabs.length], true);
    });
  });
  const start = tabs.find((t) => '#' + t.id.slice(4) === location.hash);
  if (start) select(start);
}
