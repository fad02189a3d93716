package control

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/otpgate/otpgate/internal/admin"
)

// linkBody is the request of POST /v1/users/{name}/enroll-link.
type linkBody struct {
	TTLSeconds int64 `json:"ttl_seconds"` // 0: admin.DefaultLinkTTL
}

func (s *Server) issueEnrollLink(w http.ResponseWriter, r *http.Request) {
	var b linkBody
	if !readJSON(w, r, &b, maxBody) {
		return
	}
	link, err := s.svc.IssueEnrollLink(r.Context(), r.PathValue("name"), time.Duration(b.TTLSeconds)*time.Second)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, link)
}

// IssueEnrollLink implements admin.Service.
func (c *Client) IssueEnrollLink(ctx context.Context, name string, ttl time.Duration) (admin.EnrollLink, error) {
	var out admin.EnrollLink
	err := c.do(ctx, http.MethodPost, userPath(name, "/enroll-link"), linkBody{TTLSeconds: int64(ttl / time.Second)}, &out)
	if err == nil && out.Token == "" {
		err = fmt.Errorf("control: enrollment link for %q: the daemon sent no token", name)
	}
	return out, err
}
