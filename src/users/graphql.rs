use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::model::{
    AuthPayload, ChangePasswordInput, LoginInput, RegisterInput, ResetPasswordInput, UpdateMeInput,
    User, UserFilter,
};
use super::service;
use crate::auth::{AuthUser, Role};
use crate::error::AppResult;
use crate::graphql::connection::{Connection, connection};
use crate::graphql::context::{client_ip, optional_viewer, signed_in, state, viewer};
use crate::graphql::ids::parse_id;
use crate::pagination::{PageArgs, page_complexity};

#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> AppResult<User> {
        service::me(state(ctx), viewer(ctx).await?).await
    }

    /// All accounts, oldest first (admins only).
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<User>> {
        let viewer = viewer(ctx).await?;
        let args = PageArgs::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let state = state(ctx);
        let page = service::list(state, viewer, &filter, &args).await?;
        let (state, filter) = (state.clone(), Arc::new(filter));
        Ok(connection(
            page,
            Arc::new(move || {
                let (state, filter) = (state.clone(), filter.clone());
                Box::pin(async move { service::count(&state, &filter).await })
            }),
        ))
    }
}

#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
    /// Creates a PATIENT or DOCTOR account and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> AppResult<AuthPayload> {
        sign_in(
            ctx,
            service::register(state(ctx), client_ip(ctx), input).await?,
        )
        .await
    }

    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> AppResult<AuthPayload> {
        sign_in(
            ctx,
            service::login(state(ctx), client_ip(ctx), input).await?,
        )
        .await
    }

    /// Trades a refresh token for a new pair. Each refresh token works once; presenting a used
    /// one signs the account out everywhere.
    async fn refresh_token(&self, ctx: &Context<'_>, token: String) -> AppResult<AuthPayload> {
        sign_in(
            ctx,
            service::refresh(state(ctx), client_ip(ctx), &token).await?,
        )
        .await
    }

    /// Signs the viewer out everywhere: all their access and refresh tokens stop working.
    async fn logout(&self, ctx: &Context<'_>) -> AppResult<bool> {
        service::logout(state(ctx), viewer(ctx).await?).await
    }

    /// Blocks an account (admins only); its tokens stop working on the next request.
    async fn block_user(&self, ctx: &Context<'_>, id: ID) -> AppResult<User> {
        service::set_blocked(state(ctx), viewer(ctx).await?, parse_id(&id, "id")?, true).await
    }

    async fn unblock_user(&self, ctx: &Context<'_>, id: ID) -> AppResult<User> {
        service::set_blocked(state(ctx), viewer(ctx).await?, parse_id(&id, "id")?, false).await
    }

    /// Changes the viewer's password. Every session of the account ends (its sockets close
    /// with 4403); the answer holds a fresh one for this client, and the owner is mailed.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> AppResult<AuthPayload> {
        let viewer = viewer(ctx).await?;
        sign_in(
            ctx,
            service::change_password(state(ctx), viewer, input).await?,
        )
        .await
    }

    /// Mails a password-reset link to this email if it has an account. Always true, whether or
    /// not it has one.
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> AppResult<bool> {
        service::request_password_reset(state(ctx), client_ip(ctx), &email).await
    }

    /// Sets a new password with the token of a reset mail, and signs in. The token works once
    /// and only until it expires or a newer one is mailed; every other session ends.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        input: ResetPasswordInput,
    ) -> AppResult<AuthPayload> {
        sign_in(ctx, service::reset_password(state(ctx), input).await?).await
    }

    /// Changes the viewer's name and phone number.
    async fn update_me(&self, ctx: &Context<'_>, input: UpdateMeInput) -> AppResult<User> {
        service::update_me(state(ctx), viewer(ctx).await?, input).await
    }

    /// Confirms an email address with the token of a verification mail.
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> AppResult<User> {
        service::verify_email(state(ctx), &token).await
    }

    /// Mails the viewer a new verification link; false when the address is already verified.
    async fn resend_verification_email(&self, ctx: &Context<'_>) -> AppResult<bool> {
        service::resend_verification_email(state(ctx), viewer(ctx).await?).await
    }
}

/// The payload's user is the viewer for the rest of the request, so it sees its own email.
async fn sign_in(ctx: &Context<'_>, payload: AuthPayload) -> AppResult<AuthPayload> {
    let user = AuthUser {
        id: payload.user.id,
        role: payload.user.role,
    };
    signed_in(ctx, user).await;
    Ok(payload)
}

/// Whether `viewer` may see the private fields of `user`.
fn sees_private(viewer: Option<AuthUser>, user: &User) -> bool {
    viewer.is_some_and(|v| v.id == user.id || v.is_admin())
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.name
    }

    async fn role(&self) -> Role {
        self.role
    }

    /// Null unless you are this user or an admin.
    async fn email(&self, ctx: &Context<'_>) -> AppResult<Option<&str>> {
        Ok(sees_private(optional_viewer(ctx).await?, self).then_some(self.email.as_str()))
    }

    /// Null unless you are this user or an admin (or there is none).
    async fn phone(&self, ctx: &Context<'_>) -> AppResult<Option<&str>> {
        Ok(sees_private(optional_viewer(ctx).await?, self)
            .then_some(self.phone.as_deref())
            .flatten())
    }

    /// Null unless you are this user or an admin.
    async fn blocked(&self, ctx: &Context<'_>) -> AppResult<Option<bool>> {
        Ok(sees_private(optional_viewer(ctx).await?, self).then_some(self.blocked))
    }

    /// Whether the owner has confirmed the email address (accounts made before verification
    /// existed count as confirmed).
    async fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
}
