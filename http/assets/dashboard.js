// reauth dashboard: copy buttons. A <button data-copy="…" hidden> is shown only when this
// script runs (the text stays selectable without it).
document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('button[data-copy]')) {
    const label = b.textContent;
    b.hidden = false;
    b.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(b.dataset.copy);
        b.textContent = 'Copied';
      } catch {
        b.textContent = 'Select the text to copy';
      }
      setTimeout(() => {
        b.textContent = label;
      }, 2000);
    });
  }
});
