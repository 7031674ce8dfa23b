//! Account rules: who may register, sign in, refresh, and see or block whom; passwords, the
//! profile and email verification.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use tracing::Instrument;
use uuid::Uuid;

use super::model::{
    AuthPayload, ChangePasswordInput, LoginInput, NewAccountToken, NewRefreshToken, NewUser,
    RegisterInput, ResetPasswordInput, Rotation, TokenPurpose, UpdateMeInput, User, UserFilter,
};
use super::{repo, validate};
use crate::auth::password::Passwords;
use crate::auth::tokens::{Claims, hash_refresh_token, new_refresh_token};
use crate::auth::{AuthUser, Role};
use crate::db::{self, Db, is_unique_violation};
use crate::error::{AppError, AppResult};
use crate::limits::ClientIp;
use crate::mail::Mail;
use crate::mail::templates::{self, Action};
use crate::pagination::{Page, PageArgs, malformed_cursor};
use crate::state::AppState;

pub async fn register(
    state: &AppState,
    client: ClientIp,
    input: RegisterInput,
) -> AppResult<AuthPayload> {
    state
        .limits
        .register_per_ip
        .check(client.limit_key())
        .map_err(|wait| {
            AppError::rate_limited("too many sign-ups from your address; try again later", wait)
        })?;
    if input.role == Role::Admin {
        return Err(AppError::bad_input(
            "role",
            "admins cannot register themselves; an operator creates them with `medilink create-admin`",
        ));
    }
    let user = create(
        &state.db,
        &state.passwords,
        &input.email,
        &input.password,
        &input.name,
        input.phone.as_deref(),
        input.role,
    )
    .await?;
    if let Err(e) = send_verification(state, &user).await {
        tracing::warn!(error = ?e.message(), "cannot queue the verification mail");
    }
    start_session(state, user).await
}

/// Creates an administrator; used by `medilink create-admin`, never reachable over the API.
pub async fn create_admin(
    db: &Db,
    passwords: &Passwords,
    email: &str,
    password: &str,
    name: &str,
) -> AppResult<User> {
    create(db, passwords, email, password, name, None, Role::Admin).await
}

async fn create(
    db: &Db,
    passwords: &Passwords,
    email: &str,
    password: &str,
    name: &str,
    phone: Option<&str>,
    role: Role,
) -> AppResult<User> {
    let email = validate::email(email)?;
    validate::password(password)?;
    let name = validate::name(name)?;
    let phone = phone
        .filter(|p| !p.trim().is_empty())
        .map(validate::phone)
        .transpose()?;
    let password_hash = passwords.hash(password).await?;
    let now = db::now();
    let new_user = NewUser {
        id: Uuid::now_v7(),
        email,
        password_hash,
        name,
        phone,
        role,
        now,
        // Operators create admins and vouch for their addresses.
        email_verified_at: (role == Role::Admin).then_some(now),
    };
    repo::insert(db, &new_user).await.map_err(|e| {
        if is_unique_violation(&e) {
            AppError::conflict("email", "an account with this email already exists")
        } else {
            e.into()
        }
    })
}

/// Every limit is checked before the account is looked up and its password hash computed
/// (the expensive part), and they answer the same whether or not the email has an account.
pub async fn login(
    state: &AppState,
    client: ClientIp,
    input: LoginInput,
) -> AppResult<AuthPayload> {
    let limits = &state.limits;
    let too_many =
        |wait| AppError::rate_limited("too many sign-in attempts; wait before trying again", wait);
    let incorrect = || AppError::unauthenticated("the email or password is incorrect");
    limits
        .login_per_ip
        .check(client.limit_key())
        .map_err(too_many)?;
    let email = input.email.trim().to_lowercase();
    if email.len() > validate::EMAIL_MAX_BYTES {
        // No account has it; it is not worth a place among the counted ones.
        return Err(incorrect());
    }
    limits
        .login_per_account
        .check(email.clone())
        .map_err(too_many)?;
    limits.login_failures.check(&email).map_err(too_many)?;
    let found = repo::find_with_password(&state.db, &email).await?;
    // The hash is checked even for an unknown email, so both failures take the same time.
    let matches = state
        .passwords
        .verify(
            &input.password,
            found.as_ref().map(|(_, hash)| hash.as_str()),
        )
        .await?;
    let Some((user, _)) = found.filter(|_| matches) else {
        limits.login_failures.failed(&email);
        return Err(incorrect());
    };
    limits.login_failures.succeeded(&email);
    if user.blocked {
        return Err(blocked());
    }
    start_session(state, user).await
}

/// Limited per address and per account; a refused token is not used up.
pub async fn refresh(state: &AppState, client: ClientIp, token: &str) -> AppResult<AuthPayload> {
    let too_many =
        |wait| AppError::rate_limited("too many token refreshes; wait before trying again", wait);
    let invalid = || AppError::unauthenticated("the refresh token is invalid or expired");
    state
        .limits
        .refresh_per_ip
        .check(client.limit_key())
        .map_err(too_many)?;
    let presented = hash_refresh_token(token);
    let owner = repo::refresh_token_owner(&state.db, &presented)
        .await?
        .ok_or_else(invalid)?;
    state
        .limits
        .refresh_per_account
        .check(owner)
        .map_err(too_many)?;
    let next = new_refresh_token();
    let now = db::now();
    let rotation = repo::rotate_refresh_token(
        &state.db,
        owner,
        &presented,
        &next.hash,
        now,
        now + refresh_ttl(state),
    )
    .await?;
    let user_id = match rotation {
        Rotation::Rotated { user_id } => user_id,
        Rotation::Reused { user_id } => {
            end_sessions(state, user_id);
            return Err(AppError::unauthenticated(
                "this refresh token was already used, so every session of the account was \
                 signed out; sign in again",
            ));
        }
        Rotation::Invalid => return Err(invalid()),
    };
    let user = repo::find(&state.db, user_id)
        .await?
        .ok_or_else(|| AppError::unauthenticated("the account no longer exists"))?;
    if user.blocked {
        return Err(blocked());
    }
    payload(state, user, next.plain)
}

/// Ends every session of the viewer: access and refresh tokens stop working at once.
pub async fn logout(state: &AppState, viewer: AuthUser) -> AppResult<bool> {
    repo::revoke_sessions(&state.db, viewer.id, db::now()).await?;
    end_sessions(state, viewer.id);
    Ok(true)
}

/// The one way in: the user an access token stands for, checked against the account as it is
/// now. UNAUTHENTICATED (or FORBIDDEN for a blocked account) when it does not hold.
pub async fn authenticate(state: &AppState, bearer: &str) -> AppResult<AuthUser> {
    let claims = decode(state, bearer)?;
    check(state, &claims).await
}

/// The first step of [`authenticate`]: the claims of a signed, unexpired access token, not yet
/// checked against the account. The socket's handshake takes the two steps apart so that it can
/// register for forced closes in between.
pub fn decode(state: &AppState, bearer: &str) -> AppResult<Claims> {
    state.tokens.decode_access(bearer)
}

/// The second step of [`authenticate`]: decoded claims checked against the account as it is now
/// (it exists, is not blocked, and the session has not ended).
///
/// An account whose token version this instance already knows is not read again (see
/// [`super::cache`]).
pub async fn check(state: &AppState, claims: &Claims) -> AppResult<AuthUser> {
    let epoch = state.realtime.bus.epoch();
    if let Some(role) = state.accounts.role(claims.sub, claims.tv, epoch) {
        return Ok(AuthUser {
            id: claims.sub,
            role,
        });
    }
    let lookup = state.accounts.lookup(epoch);
    let user = repo::find(&state.db, claims.sub)
        .await?
        .ok_or_else(|| AppError::unauthenticated("the account no longer exists"))?;
    if user.blocked {
        return Err(blocked());
    }
    if user.token_version != claims.tv {
        return Err(AppError::unauthenticated(
            "this session has ended; sign in again",
        ));
    }
    state
        .accounts
        .learn(lookup, user.id, user.token_version, user.role);
    Ok(AuthUser {
        id: user.id,
        role: user.role,
    })
}

/// After the account's token version was bumped: its sockets close and every instance stops
/// taking its old tokens.
fn end_sessions(state: &AppState, user_id: Uuid) {
    state.accounts.forget(user_id);
    state.realtime.presence.kick(user_id);
}

pub async fn me(state: &AppState, viewer: AuthUser) -> AppResult<User> {
    repo::find(&state.db, viewer.id)
        .await?
        .ok_or_else(|| AppError::unauthenticated("the account no longer exists"))
}

/// Users by id, for batched loading; ids that match nobody are absent.
pub async fn find_many(state: &AppState, ids: &[Uuid]) -> AppResult<HashMap<Uuid, User>> {
    let users = repo::find_many(&state.db, ids).await?;
    Ok(users.into_iter().map(|u| (u.id, u)).collect())
}

pub async fn list(
    state: &AppState,
    viewer: AuthUser,
    filter: &UserFilter,
    args: &PageArgs,
) -> AppResult<Page<User>> {
    viewer.require(Role::Admin)?;
    validate::search(filter.search.as_deref())?;
    let after = args
        .after
        .as_deref()
        .map(|cursor| Uuid::parse_str(cursor).map_err(|_| malformed_cursor()))
        .transpose()?;
    let rows = repo::list(&state.db, filter, after, args.fetch_limit()).await?;
    Ok(Page::from_rows(rows, args, |user| user.id.to_string()))
}

pub async fn count(state: &AppState, filter: &UserFilter) -> AppResult<i64> {
    Ok(repo::count(&state.db, filter).await?)
}

pub async fn set_blocked(
    state: &AppState,
    viewer: AuthUser,
    id: Uuid,
    blocked: bool,
) -> AppResult<User> {
    viewer.require(Role::Admin)?;
    if blocked && id == viewer.id {
        return Err(AppError::bad_input(
            "id",
            "you cannot block your own account",
        ));
    }
    let user = repo::set_blocked(&state.db, id, blocked, db::now())
        .await?
        .ok_or_else(|| AppError::not_found("no user has this id").with_field("id"))?;
    if blocked {
        end_sessions(state, id);
    }
    Ok(user)
}

async fn start_session(state: &AppState, user: User) -> AppResult<AuthPayload> {
    let refresh = new_refresh_token();
    let now = db::now();
    repo::insert_refresh_token(
        &state.db,
        &NewRefreshToken {
            user_id: user.id,
            family_id: Uuid::now_v7(),
            hash: refresh.hash,
            now,
            expires_at: now + refresh_ttl(state),
        },
    )
    .await?;
    payload(state, user, refresh.plain)
}

fn payload(state: &AppState, user: User, refresh_token: String) -> AppResult<AuthPayload> {
    let access_token = state
        .tokens
        .issue_access(user.id, user.role, user.token_version)?;
    let ttl = Duration::from_std(state.tokens.access_ttl()).unwrap_or(Duration::MAX);
    Ok(AuthPayload {
        access_token,
        access_token_expires_at: Utc::now() + ttl,
        refresh_token,
        user,
    })
}

fn refresh_ttl(state: &AppState) -> Duration {
    Duration::days(i64::try_from(state.config.refresh_token_ttl_days).unwrap_or(i64::MAX / 2))
}

fn blocked() -> AppError {
    AppError::forbidden("this account is blocked; contact support")
}

/// How long a verification link works.
const VERIFICATION_TTL: Duration = Duration::days(7);

/// Checks the current password, sets the new one, and ends every session of the account (its
/// sockets close with 4403); the owner is mailed, and this client gets a fresh session. Wrong
/// current passwords count towards the sign-in backoff of the account's email.
pub async fn change_password(
    state: &AppState,
    viewer: AuthUser,
    input: ChangePasswordInput,
) -> AppResult<AuthPayload> {
    new_password(&input.new_password)?;
    let (user, hash) = repo::find_with_password_by_id(&state.db, viewer.id)
        .await?
        .ok_or_else(|| AppError::unauthenticated("the account no longer exists"))?;
    let backoff = &state.limits.login_failures;
    backoff.check(&user.email).map_err(|wait| {
        AppError::rate_limited("too many wrong passwords; wait before trying again", wait)
    })?;
    if !state
        .passwords
        .verify(&input.current_password, Some(&hash))
        .await?
    {
        backoff.failed(&user.email);
        return Err(AppError::bad_input(
            "currentPassword",
            "the current password is incorrect",
        ));
    }
    backoff.succeeded(&user.email);
    let password_hash = state.passwords.hash(&input.new_password).await?;
    let now = state.clock.now();
    let mail = Mail {
        to: user.email.clone(),
        content: templates::password_changed(now),
    };
    repo::change_password(&state.db, &state.mail, user.id, &password_hash, now, &mail).await?;
    end_sessions(state, user.id);
    start_session(state, me(state, viewer).await?).await
}

/// Mails a reset link to the account with `email`, if there is one. The answer is always
/// `true`, given once the limits have passed and before the account is looked up: its time
/// cannot tell whether the email has an account (a commit that writes a token waits for the
/// disk, one that finds no account does not). The lookup, the token and the mail follow, in
/// the background.
pub async fn request_password_reset(
    state: &AppState,
    client: ClientIp,
    email: &str,
) -> AppResult<bool> {
    let too_many =
        |wait| AppError::rate_limited("too many reset requests; wait before trying again", wait);
    state
        .limits
        .password_reset_per_ip
        .check(client.limit_key())
        .map_err(too_many)?;
    let email = email.trim().to_lowercase();
    if email.len() > validate::EMAIL_MAX_BYTES {
        // No account has it; it is not worth a place among the counted ones.
        return Ok(true);
    }
    state
        .limits
        .password_reset_per_email
        .check(email.clone())
        .map_err(too_many)?;
    let background = state.clone();
    state.shutdown.after(
        std::time::Duration::ZERO,
        async move {
            if let Err(e) = store_reset(&background, &email).await {
                tracing::warn!(error = ?e.message(), "cannot store a password reset");
            }
        }
        .in_current_span(),
    );
    Ok(true)
}

/// Stores a reset token for the account with `email` and queues its mail, with the same
/// statements whether or not there is one.
async fn store_reset(state: &AppState, email: &str) -> AppResult<()> {
    let token = new_refresh_token();
    let now = state.clock.now();
    let ttl = state.config.password_reset_ttl.as_duration();
    let mail = Mail {
        to: email.to_owned(),
        content: templates::password_reset(
            &action(state.config.password_reset_url.as_deref(), &token.plain),
            ttl.as_secs().div_ceil(60),
        ),
    };
    let new_token = NewAccountToken {
        purpose: TokenPurpose::PasswordReset,
        hash: &token.hash,
        now,
        expires_at: now + Duration::from_std(ttl).unwrap_or(Duration::MAX),
    };
    Ok(repo::request_reset(&state.db, &state.mail, email, &new_token, &mail).await?)
}

/// Sets a new password with a mailed reset token: the token works once, until it expires or a
/// newer one is issued; every other session of the account ends. A blocked account cannot.
pub async fn reset_password(state: &AppState, input: ResetPasswordInput) -> AppResult<AuthPayload> {
    new_password(&input.new_password)?;
    let invalid = || {
        AppError::bad_input(
            "token",
            "this reset link is not valid (used, or replaced by a newer one); ask for a new one",
        )
    };
    let hash = hash_refresh_token(&input.token);
    let found = repo::find_token(&state.db, TokenPurpose::PasswordReset, &hash)
        .await?
        .ok_or_else(invalid)?;
    let now = state.clock.now();
    if found.expires_at <= now {
        return Err(AppError::bad_input(
            "token",
            "this reset link has expired; ask for a new one",
        ));
    }
    let user = repo::find(&state.db, found.user_id)
        .await?
        .ok_or_else(invalid)?;
    if user.blocked {
        return Err(blocked());
    }
    let password_hash = state.passwords.hash(&input.new_password).await?;
    let mail = Mail {
        to: user.email.clone(),
        content: templates::password_changed(now),
    };
    if !repo::reset_password(&state.db, &state.mail, &hash, &password_hash, now, &mail).await? {
        return Err(invalid());
    }
    end_sessions(state, user.id);
    let user = repo::find(&state.db, user.id).await?.ok_or_else(invalid)?;
    start_session(state, user).await
}

/// Changes the viewer's name and phone, with `register`'s rules.
pub async fn update_me(
    state: &AppState,
    viewer: AuthUser,
    input: UpdateMeInput,
) -> AppResult<User> {
    let name = input.name.as_deref().map(validate::name).transpose()?;
    let phone = input
        .phone
        .as_deref()
        .map(|p| {
            (!p.trim().is_empty())
                .then(|| validate::phone(p))
                .transpose()
        })
        .transpose()?;
    repo::update_profile(
        &state.db,
        viewer.id,
        name.as_deref(),
        phone.as_ref().map(Option::as_deref),
        db::now(),
    )
    .await?
    .ok_or_else(|| AppError::unauthenticated("the account no longer exists"))
}

/// Marks the address of the token's account verified; the token works once.
pub async fn verify_email(state: &AppState, token: &str) -> AppResult<User> {
    let hash = hash_refresh_token(token);
    let user = repo::verify_email(&state.db, &hash, state.clock.now())
        .await?
        .ok_or_else(|| {
            AppError::bad_input(
                "token",
                "this verification link is not valid (used, expired or replaced by a newer \
                 one); ask for a new one with resendVerificationEmail",
            )
        })?;
    repo::find(&state.db, user)
        .await?
        .ok_or_else(|| AppError::not_found("the account no longer exists"))
}

/// Mails the viewer a new verification link (the older one stops working); `false` when the
/// address is already verified.
pub async fn resend_verification_email(state: &AppState, viewer: AuthUser) -> AppResult<bool> {
    state
        .limits
        .verification_mail_per_user
        .check(viewer.id)
        .map_err(|wait| {
            AppError::rate_limited(
                "too many verification mails; wait before asking again",
                wait,
            )
        })?;
    let user = me(state, viewer).await?;
    if user.email_verified_at.is_some() {
        return Ok(false);
    }
    send_verification(state, &user).await?;
    Ok(true)
}

/// FORBIDDEN for a patient whose address is not verified, when MEDILINK_REQUIRE_VERIFIED_EMAIL
/// is on; `what` is what they tried ("book an appointment").
pub async fn require_verified_email(
    state: &AppState,
    viewer: AuthUser,
    what: &str,
) -> AppResult<()> {
    if !state.config.require_verified_email || viewer.role != Role::Patient {
        return Ok(());
    }
    if me(state, viewer).await?.email_verified_at.is_none() {
        return Err(AppError::forbidden(format!(
            "verify your email address before you {what}: open the link in the mail we sent \
             you, or ask for a new one with resendVerificationEmail"
        )));
    }
    Ok(())
}

async fn send_verification(state: &AppState, user: &User) -> AppResult<()> {
    let token = new_refresh_token();
    let now = state.clock.now();
    let mail = Mail {
        to: user.email.clone(),
        content: templates::email_verification(&action(
            state.config.email_verification_url.as_deref(),
            &token.plain,
        )),
    };
    let new_token = NewAccountToken {
        purpose: TokenPurpose::EmailVerification,
        hash: &token.hash,
        now,
        expires_at: now + VERIFICATION_TTL,
    };
    Ok(repo::issue_token(&state.db, &state.mail, user.id, &new_token, &mail).await?)
}

/// The link of `page` (a URL with `{token}`) for `token`, or the token alone without a page.
fn action(page: Option<&str>, token: &str) -> Action {
    match page {
        Some(page) => Action::Link(page.replace("{token}", token)),
        None => Action::Code(token.to_owned()),
    }
}

fn new_password(password: &str) -> AppResult<()> {
    validate::password(password).map_err(|e| e.with_field("newPassword"))
}
