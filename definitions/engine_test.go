package definitions

// The rules engine registers itself with package rules (the demo set has
// rules).
import _ "github.com/arbiter-nba/arbiter/celrules"
