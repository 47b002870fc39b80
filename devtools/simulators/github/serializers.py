"""GitHub's JSON shapes for accounts, repositories, labels, hooks, deliveries and the App."""

from __future__ import annotations

import json

from simulators.github.models import (
    App,
    Delivery,
    Hook,
    Installation,
    Label,
    Permission,
    Repo,
    User,
)
from simulators.github.store import Store
from simulators.github.urls import Urls, iso, node_id

# The repository `*_url` templates, in GitHub's order: (field, path under the repo, template).
_REPO_LINKS = [
    ("forks_url", "/forks"),
    ("keys_url", "/keys{/key_id}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("teams_url", "/teams"),
    ("hooks_url", "/hooks"),
    ("issue_events_url", "/issues/events{/number}"),
    ("events_url", "/events"),
    ("assignees_url", "/assignees{/user}"),
    ("branches_url", "/branches{/branch}"),
    ("tags_url", "/tags"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("trees_url", "/git/trees{/sha}"),
    ("statuses_url", "/statuses/{sha}"),
    ("languages_url", "/languages"),
    ("stargazers_url", "/stargazers"),
    ("contributors_url", "/contributors"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("commits_url", "/commits{/sha}"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("comments_url", "/comments{/number}"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("contents_url", "/contents/{+path}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("merges_url", "/merges"),
    ("archive_url", "/{archive_format}{/ref}"),
    ("downloads_url", "/downloads"),
    ("issues_url", "/issues{/number}"),
    ("pulls_url", "/pulls{/number}"),
    ("milestones_url", "/milestones{/number}"),
    ("notifications_url", "/notifications{?since,all,participating}"),
    ("labels_url", "/labels{/name}"),
    ("releases_url", "/releases{/id}"),
    ("deployments_url", "/deployments"),
]


def reactions(url: str) -> dict:
    """An empty reactions rollup (the simulator has no reactions)."""
    counts = dict.fromkeys(
        ["+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes"], 0
    )
    return {"url": url, "total_count": 0, **counts}


class BaseSerializer:
    """Renders accounts, repositories, hooks and the App with URLs on the server ``urls``."""

    def __init__(self, store: Store, urls: Urls) -> None:
        self.store = store
        self.urls = urls

    # accounts

    def user(self, login_or_user: str | User | None) -> dict | None:
        """The "simple user" object embedded everywhere."""
        if login_or_user is None:
            return None
        if isinstance(login_or_user, User):
            user = login_or_user
        else:
            user = self.store.find_user(login_or_user) or User(id=0, login=login_or_user)
        url = self.urls.user(user.login)
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id("User", user.id),
            "avatar_url": self.urls.avatar(user.id),
            "gravatar_id": "",
            "url": url,
            "html_url": self.urls.user_html(user.login),
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions",
            "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": user.type,
            "site_admin": user.site_admin,
        }

    def full_user(self, user: User) -> dict:
        """`GET /user` and `GET /users/{login}`: the simple user plus the profile."""
        with self.store.lock:
            public_repos = sum(
                1 for r in self.store.repos.values() if r.owner == user.login and not r.private
            )
        return {
            **(self.user(user) or {}),
            "name": user.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": user.email,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": public_repos,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": iso(user.created_at),
            "updated_at": iso(user.created_at),
        }

    def organization(self, login: str) -> dict:
        """The `organization` object of webhook payloads for org-owned repositories."""
        user = self.store.user(login)
        url = f"{self.urls.api}/orgs/{login}"
        return {
            "login": login,
            "id": user.id,
            "node_id": node_id("Organization", user.id),
            "url": url,
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events",
            "hooks_url": f"{url}/hooks",
            "issues_url": f"{url}/issues",
            "members_url": f"{url}/members{{/member}}",
            "public_members_url": f"{url}/public_members{{/member}}",
            "avatar_url": self.urls.avatar(user.id),
            "description": None,
        }

    # repositories

    def repo(self, repo: Repo, permission: Permission | None = None) -> dict:
        """A full repository; with ``permission`` also the caller's `permissions` as REST adds."""
        api = self.urls.repo(repo.full_name)
        html = self.urls.repo_html(repo.full_name)
        host = self.urls.web.split("://", 1)[-1].split(":")[0]
        data: dict = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self.user(repo.owner),
            "html_url": html,
            "description": repo.description,
            "fork": False,
            "url": api,
        }
        data.update({field: api + suffix for field, suffix in _REPO_LINKS})
        data.update(
            {
                "created_at": iso(repo.created_at),
                "updated_at": iso(repo.updated_at),
                "pushed_at": iso(repo.pushed_at),
                "git_url": f"git://{host}/{repo.full_name}.git",
                "ssh_url": f"git@{host}:{repo.full_name}.git",
                "clone_url": self.urls.clone(repo.full_name),
                "svn_url": html,
                "homepage": None,
                "size": 0,
                "stargazers_count": 0,
                "watchers_count": 0,
                "language": "Python",
                "has_issues": True,
                "has_projects": True,
                "has_downloads": True,
                "has_wiki": True,
                "has_pages": False,
                "forks_count": 0,
                "mirror_url": None,
                "archived": False,
                "disabled": False,
                "open_issues_count": repo.open_issues_count,
                "license": None,
                "allow_forking": True,
                "is_template": False,
                "web_commit_signoff_required": False,
                "topics": [],
                "visibility": "private" if repo.private else "public",
                "forks": 0,
                "open_issues": repo.open_issues_count,
                "watchers": 0,
                "default_branch": repo.default_branch,
                "custom_properties": {},
            }
        )
        if permission is not None:
            data["permissions"] = self.permissions(permission)
            data.update({"network_count": 0, "subscribers_count": 0})
        return data

    @staticmethod
    def permissions(role: Permission) -> dict[str, bool]:
        """The `permissions` flags GitHub derives from a role."""
        return {
            "admin": role.allows(Permission.ADMIN),
            "maintain": role.allows(Permission.MAINTAIN),
            "push": role.allows(Permission.WRITE),
            "triage": role.allows(Permission.TRIAGE),
            "pull": role.allows(Permission.READ),
        }

    def collaborator_permission(self, login: str, role: Permission) -> dict:
        """`GET /repos/{o}/{r}/collaborators/{u}/permission`."""
        user = {
            **(self.user(login) or {}),
            "permissions": self.permissions(role),
            "role_name": role.value,
        }
        return {"permission": role.legacy, "role_name": role.value, "user": user}

    def label(self, repo: Repo, label: Label) -> dict:
        """A repository label."""
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.urls.repo(repo.full_name)}/labels/{label.name}",
            "name": label.name,
            "color": label.color,
            "default": label.default,
            "description": label.description,
        }

    # hooks and deliveries

    @staticmethod
    def hook_config(hook: Hook) -> dict:
        """A webhook's `config`, a repository's or the App's (the secret masked as GitHub does)."""
        config = {"content_type": hook.content_type, "insecure_ssl": hook.insecure_ssl}
        if hook.secret:
            config["secret"] = "********"  # noqa: S105 (GitHub's mask, not a secret)
        config["url"] = hook.url
        return config

    def hook(self, repo: Repo, hook: Hook) -> dict:
        """A repository webhook."""
        url = self.urls.hook(repo.full_name, hook.id)
        return {
            "type": "Repository",
            "id": hook.id,
            "name": "web",
            "active": hook.active,
            "events": list(hook.events),
            "config": self.hook_config(hook),
            "updated_at": iso(hook.updated_at),
            "created_at": iso(hook.created_at),
            "url": url,
            "test_url": f"{url}/test",
            "ping_url": f"{url}/pings",
            "deliveries_url": f"{url}/deliveries",
            "last_response": dict(hook.last_response),
        }

    def delivery(self, delivery: Delivery, *, full: bool = False) -> dict:
        """A webhook delivery: the summary GitHub lists, or with ``full`` request and response."""
        repo = self.store.find_repo(delivery.repo) if delivery.repo else None
        data: dict = {
            "id": delivery.id,
            "guid": delivery.guid,
            "delivered_at": iso(delivery.delivered_at),
            "redelivery": delivery.redelivery,
            "duration": round(delivery.duration, 3),
            "status": delivery.status,
            "status_code": delivery.status_code,
            "event": delivery.event,
            "action": delivery.action,
            "installation_id": delivery.installation_id,
            "repository_id": repo.id if repo else None,
            "throttled_at": None,
        }
        if full:
            data["url"] = delivery.url
            data["request"] = {
                "headers": dict(delivery.request_headers),
                "payload": json.loads(delivery.body),
            }
            data["response"] = {
                "headers": dict(delivery.response_headers),
                "payload": delivery.response_body,
            }
        return data

    # the GitHub App

    def app(self, app: App) -> dict:
        """`GET /app`."""
        return {
            "id": app.id,
            "slug": app.slug,
            "node_id": node_id("Integration", app.id),
            "client_id": app.client_id,
            "owner": self.user(app.owner),
            "name": app.name,
            "description": "",
            "external_url": self.urls.web,
            "html_url": f"{self.urls.web}/apps/{app.slug}",
            "created_at": iso(app.created_at),
            "updated_at": iso(app.created_at),
            "permissions": dict(app.permissions),
            "events": list(app.events),
            "installations_count": len(app.installations),
        }

    def installation(self, app: App, installation: Installation) -> dict:
        """An installation of the App, as the REST API and `installation` webhooks show it."""
        account = self.store.user(installation.account)
        url = self.urls.installation(installation.id)
        return {
            "id": installation.id,
            "client_id": app.client_id,
            "account": self.user(account),
            "repository_selection": installation.repository_selection.value,
            "access_tokens_url": f"{url}/access_tokens",
            "repositories_url": f"{self.urls.api}/installation/repositories",
            "html_url": f"{self.urls.web}/settings/installations/{installation.id}",
            "app_id": app.id,
            "app_slug": app.slug,
            "target_id": account.id,
            "target_type": account.type,
            "permissions": dict(installation.permissions),
            "events": list(app.events),
            "created_at": iso(installation.created_at),
            "updated_at": iso(installation.updated_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": self.user(installation.suspended_by),
            "suspended_at": iso(installation.suspended_at),
        }

    @staticmethod
    def repo_summary(repo: Repo) -> dict:
        """The short repository object of `installation` and `installation_repositories`."""
        return {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
        }
