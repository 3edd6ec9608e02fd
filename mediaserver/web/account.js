// The account page: copy the personal room link (no inline scripts: the CSP forbids them).
document.getElementById("copy-room")?.addEventListener("click", async () => {
  const input = document.getElementById("room-link");
  const status = document.getElementById("copy-status");
  try {
    await navigator.clipboard.writeText(input.value);
    status.textContent = "Link copied.";
  } catch (e) {
    input.select();
    status.textContent = "Press Ctrl+C to copy the selected link.";
  }
});
