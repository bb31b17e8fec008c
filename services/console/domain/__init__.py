"""What the console computes from what it has read: lateness, on-time rates, spans. No I/O."""
