package contact

// The zone database is embedded, so that quiet hours and calendar caps
// count local time the same on every machine, whatever its own zoneinfo.
import _ "time/tzdata"
