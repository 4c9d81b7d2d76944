"""Customer portal: view, reschedule and cancel bookings; contact details and data export."""
