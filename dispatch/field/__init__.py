"""Officers in the field, as their devices and their supervisors see them: duty status reported by the
device, check-ins on the assigned grid, roll calls, commands to devices, and device health.

`desk.FieldDesk` takes the devices' messages (status, check-in, roll-call answer) that ingest hands over
and answers each device on its downlink; `plugin.FieldPlugin` mounts the routes and runs the timers. The
dispatcher's side reaches devices only through the `downlink.DeviceSender` port that the composition root
fills with the gateway's channel.
"""
