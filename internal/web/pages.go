package web

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
)

// Page names.
const (
	pageEnroll  = "enroll"
	pageDone    = "done"
	pageInvalid = "invalid"
	pageBusy    = "busy"
	pageBroken  = "broken"
)

// style is the whole stylesheet, inline; the CSP allows exactly it by hash.
const style = `
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f3f4f6;color:#111827;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:34rem;margin:2rem auto;padding:0 1rem}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:12px;padding:1.5rem;box-shadow:0 1px 3px rgba(0,0,0,.06)}
h1{font-size:1.4rem;line-height:1.25;margin:0 0 .25rem}
h2{font-size:1rem;margin:1.5rem 0 .5rem}
p{margin:.5rem 0}
.who{color:#4b5563;margin:0 0 1rem}
.who b{color:#111827}
.step{display:inline-block;width:1.6rem;height:1.6rem;line-height:1.6rem;text-align:center;border-radius:50%;background:#1d4ed8;color:#fff;font-size:.9rem;margin-right:.4rem}
.qr{display:block;width:min(100%,15rem);height:auto;margin:.75rem auto;image-rendering:pixelated;border:1px solid #e5e7eb;border-radius:8px}
details{margin:.5rem 0;border:1px solid #e5e7eb;border-radius:8px;padding:.5rem .75rem;background:#f9fafb}
summary{cursor:pointer;font-weight:600}
.key{font:600 1.15rem/1.6 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;letter-spacing:.05em;word-spacing:.35em;overflow-wrap:anywhere;background:#fff;border:1px dashed #9ca3af;border-radius:6px;padding:.5rem .75rem;margin:.5rem 0;user-select:all}
.muted{color:#6b7280;font-size:.9rem}
a{color:#1d4ed8}
form{margin-top:.5rem}
label{display:block;font-weight:600;margin-bottom:.35rem}
.row{display:flex;gap:.5rem;flex-wrap:wrap}
input[type=text]{flex:1 1 9rem;min-width:0;font:600 1.4rem/1 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;letter-spacing:.2em;padding:.6rem .75rem;border:1px solid #9ca3af;border-radius:8px}
input[type=text]:focus{outline:3px solid #93c5fd;border-color:#1d4ed8}
button{flex:0 0 auto;font-family:inherit;font-size:1rem;font-weight:600;line-height:1;padding:.8rem 1.4rem;border:0;border-radius:8px;background:#1d4ed8;color:#fff;cursor:pointer}
button:hover{background:#1e40af}
.error{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;border-radius:8px;padding:.6rem .75rem;margin:.75rem 0}
.ok{background:#ecfdf5;border:1px solid #a7f3d0;color:#065f46;border-radius:8px;padding:.6rem .75rem;margin:.75rem 0}
ol.codes{list-style:none;padding:0;margin:1rem 0;display:grid;grid-template-columns:repeat(auto-fill,minmax(13rem,1fr));gap:.5rem}
ol.codes li{background:#f9fafb;border:1px solid #e5e7eb;border-radius:6px;padding:.4rem .6rem;text-align:center;font:600 1.05rem/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;user-select:all}
footer{text-align:center;color:#9ca3af;font-size:.8rem;margin:1rem 0}
@media (max-width:30rem){main{margin:.75rem auto}.card{padding:1rem;border-radius:10px}h1{font-size:1.25rem}}
`

// csp is the Content-Security-Policy of every page.
var csp = func() string {
	sum := sha256.Sum256([]byte(style))
	return "default-src 'none'; img-src 'self' data:; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

const layout = `{{define "head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{.}}</title>
<style>{{style}}</style>
</head>
<body>
<main>
<div class="card">
{{end}}
{{define "foot"}}</div>
<footer>otpgate</footer>
</main>
</body>
</html>
{{end}}

{{define "enroll"}}{{template "head" "Set up two-factor login"}}
<h1>Set up two-factor login</h1>
<p class="who">Account <b>{{.User}}</b> at <b>{{.Issuer}}</b></p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<h2><span class="step">1</span>Add the account to your authenticator app</h2>
<p>Scan this code with Google Authenticator, Microsoft Authenticator, Authy or any TOTP app.</p>
<img class="qr" id="qr" src="{{.QR}}" width="240" height="240" alt="QR code for {{.Issuer}}: {{.User}}">
<p class="muted">On this phone already? <a href="{{.OTPAuth}}">Open it in your authenticator app</a>.</p>
<details>
<summary>I can't scan the code</summary>
<p>In the app, add an account by hand ({{.Kind}}):</p>
<p>Account: <b>{{.Issuer}}:{{.User}}</b></p>
<p>Key:</p>
<p class="key" id="key">{{.Key}}</p>
</details>
<h2><span class="step">2</span>Type the code the app shows</h2>
<form method="post">
<label for="code">{{.Digits}}-digit code</label>
<div class="row">
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="12" required autofocus>
<button type="submit">Activate</button>
</div>
</form>
<p class="muted">This link works once, until {{.Expires}}. Never type a password here.</p>
{{template "foot"}}{{end}}

{{define "done"}}{{template "head" "Two-factor login is active"}}
<h1>Two-factor login is active</h1>
<p class="ok" role="status">Your authenticator app is set up. From now on, log in with your password and the code the app shows.</p>
<h2>Your recovery codes</h2>
<p>If you lose your phone, each of these codes works once instead of an app code. <b>Save them now</b> (print them or keep them in a password manager): this page will not show them again.</p>
<ol class="codes" id="codes">{{range .Codes}}<li>{{.}}</li>{{end}}</ol>
<p class="muted">This link no longer works. You can close this page.</p>
{{template "foot"}}{{end}}

{{define "invalid"}}{{template "head" "Link not valid"}}
<h1>This link does not work</h1>
<p>The enrollment link is not valid: it may have expired, been used already, or been replaced by a newer one.</p>
<p>Ask your administrator for a new link.</p>
{{template "foot"}}{{end}}

{{define "busy"}}{{template "head" "Please wait"}}
<h1>Too many attempts</h1>
<p>Please wait a moment, then go back and try again.</p>
{{template "foot"}}{{end}}

{{define "broken"}}{{template "head" "Something went wrong"}}
<h1>Something went wrong</h1>
<p>The page could not be shown. Try again in a minute, or ask your administrator.</p>
{{template "foot"}}{{end}}
`

var pages = template.Must(template.New("pages").Funcs(template.FuncMap{
	"style": func() template.CSS { return template.CSS(style) },
}).Parse(layout))
