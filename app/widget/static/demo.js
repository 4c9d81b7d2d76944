/* Widget test page: shows the events the loader reports, as an embedding site would receive them. */
Upzento.on("booking_completed", function (d) {
  document.getElementById("upz-demo-events").textContent = "booking_completed: " + d.appointmentId;
});
