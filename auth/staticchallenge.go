package auth

import (
	"encoding/base64"
	"strings"
)

// staticChallengePrefix starts an OpenVPN static-challenge password
// ("static-challenge" in the client config): OpenVPN sends
// "SCRV1:<base64 password>:<base64 response>" as the password, and
// radiusplugin forwards it unchanged in User-Password.
const staticChallengePrefix = "SCRV1:"

// decodeStaticChallenge splits an OpenVPN static-challenge field into the
// password and the response (the code). ok is false for any other field,
// including one that starts with the prefix but is not exactly two valid
// standard base64 parts: that field is then read as a literal password.
func decodeStaticChallenge(field string) (password, response string, ok bool) {
	rest, found := strings.CutPrefix(field, staticChallengePrefix)
	if !found {
		return "", "", false
	}
	pw64, resp64, found := strings.Cut(rest, ":")
	if !found || strings.Contains(resp64, ":") {
		return "", "", false
	}
	pw, err := base64.StdEncoding.DecodeString(pw64)
	if err != nil {
		return "", "", false
	}
	resp, err := base64.StdEncoding.DecodeString(resp64)
	if err != nil {
		return "", "", false
	}
	return string(pw), string(resp), true
}
